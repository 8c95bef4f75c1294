"""Real photographs that ship inside installed packages, as a training set that needs no download.

scikit-image keeps a handful of sample images in its wheel (``skimage/data/*``); others are
fetched on demand through pooch.  scikit-learn ships two JPEGs (``sklearn/datasets/images``).
This module reads only the files that are already on disk: it locates the packages with
``importlib.util.find_spec`` (no import of ``skimage.data``, no fetcher, no network) and refuses
a name whose file is absent instead of downloading it.
"""
import importlib.util
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

# name -> (package, folder inside the package, file)
_PHOTO_FILES = {
    # scikit-image: colour photographs (and one micrograph, ``ihc``)
    'astronaut': ('skimage', 'data', 'astronaut.png'),
    'chelsea': ('skimage', 'data', 'chelsea.png'),
    'coffee': ('skimage', 'data', 'coffee.png'),
    'hubble_deep_field': ('skimage', 'data', 'hubble_deep_field.jpg'),
    'rocket': ('skimage', 'data', 'rocket.jpg'),
    'motorcycle_left': ('skimage', 'data', 'motorcycle_left.png'),
    'motorcycle_right': ('skimage', 'data', 'motorcycle_right.png'),
    'retina': ('skimage', 'data', 'retina.jpg'),
    'ihc': ('skimage', 'data', 'ihc.png'),
    # scikit-image: grey-level photographs (decoded to three equal channels)
    'camera': ('skimage', 'data', 'camera.png'),
    'coins': ('skimage', 'data', 'coins.png'),
    'moon': ('skimage', 'data', 'moon.png'),
    'grass': ('skimage', 'data', 'grass.png'),
    'gravel': ('skimage', 'data', 'gravel.png'),
    'brick': ('skimage', 'data', 'brick.png'),
    # scikit-learn: the two images of load_sample_images()
    'china': ('sklearn', 'datasets/images', 'china.jpg'),
    'flower': ('sklearn', 'datasets/images', 'flower.jpg'),
}

#: the default training set: every colour photograph above
COLOR_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'hubble_deep_field', 'rocket', 'motorcycle_left',
                'motorcycle_right', 'retina', 'ihc', 'china', 'flower')
GRAY_PHOTOS = ('camera', 'coins', 'moon', 'grass', 'gravel', 'brick')
ALL_PHOTOS = tuple(_PHOTO_FILES)


def _package_dir(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'package {package!r} is not installed; the sample photos are read from it '
            f'(pip install {"scikit-image" if package == "skimage" else "scikit-learn"})')
    return list(spec.submodule_search_locations)[0]


def packaged_photo_path(name: str) -> str:
    """The on-disk path of one sample photo; raises if the name is unknown or the file absent."""
    if name not in _PHOTO_FILES:
        raise KeyError(f'unknown sample photo {name!r}; choose from {sorted(_PHOTO_FILES)}')
    package, folder, fname = _PHOTO_FILES[name]
    path = osp.join(_package_dir(package), *folder.split('/'), fname)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'sample photo {name!r} is not bundled with the installed {package} ({path} is '
            'missing); it is never downloaded, pick another name')
    return path


def packaged_photo_paths(names: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """``{name: path}`` for ``names`` (default :data:`COLOR_PHOTOS`), in the given order."""
    names = COLOR_PHOTOS if names is None else tuple(names)
    if not names:
        raise ValueError('no sample photo names given')
    return {n: packaged_photo_path(n) for n in names}


def read_photo(path: str, max_size: Optional[int] = None, channel_order: str = 'bgr') -> np.ndarray:
    """Decode to ``uint8 [H, W, 3]``; shrink (keeping the aspect) so the longer side is at most
    ``max_size``.  Raises ``ValueError`` naming the file when it cannot be decoded."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        img = mmcv.imfrombytes(data, flag='color', channel_order=channel_order, backend='pillow')
    except Exception as err:  # PIL raises several types for broken files
        raise ValueError(f'cannot decode image {path}: {err}') from None
    if img is None:
        raise ValueError(f'cannot decode image {path}')
    if max_size is not None and max(img.shape[:2]) > max_size:
        img = mmcv.imrescale(img, (max_size, max_size), interpolation='area', backend='cv2')
    return np.ascontiguousarray(img)


@DATASETS.register_module()
class PackagedPhotos(BaseDataset):
    """Unlabelled dataset of the sample photographs of scikit-image and scikit-learn.

    Args:
        names: which photos (see :data:`ALL_PHOTOS`); default the 11 colour ones.
        max_size: decode once at construction and keep the photos in memory, shrunk so the
            longer side is at most ``max_size`` pixels; the pipeline then starts after
            loading (no ``LoadImageFromFile``).  ``None`` keeps only paths: the pipeline must
            load the files itself.
        pipeline: transforms (e.g. ``RandomResizedCrop``, ``RandomFlip``, ``PackInputs``).
    """
    METAINFO = dict(classes=None)

    def __init__(self,
                 names: Optional[Sequence[str]] = None,
                 max_size: Optional[int] = 512,
                 pipeline: Sequence = (),
                 **kwargs):
        self.names = list(COLOR_PHOTOS if names is None else names)
        if max_size is not None and max_size < 32:
            raise ValueError(f'max_size must be at least 32 pixels, got {max_size}')
        self.max_size = max_size
        # resolve the files now so a missing one fails at build time, with its name
        self.paths = packaged_photo_paths(self.names)
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', pipeline=list(pipeline), **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = []
        for name, path in self.paths.items():
            info = dict(img_path=path, sample_name=name)
            if self.max_size is not None:
                img = read_photo(path, self.max_size)
                info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            data_list.append(info)
        return data_list

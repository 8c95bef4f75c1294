"""Checks that a data root has the layout a dataset config expects, before any training.

Each check raises :class:`DataLayoutError` naming the file and what was expected.  Covered:

* mmpretrain ``ImageNet`` / ``CustomDataset`` with a ``split``: ``meta/<split>.txt`` must
  exist (without it mmpretrain would silently scan the folders instead), each line is
  ``<relative path> <label>`` naming an existing file, and no class folder is empty;
* mmdet ``CocoDataset`` / ``StrictCocoDataset``: the annotation file exists, is a COCO
  instances file, and every image it names exists under ``data_prefix.img``;
* mmseg ``ADE20KDataset`` (any ``BaseSegDataset`` with ``img_path`` / ``seg_map_path``):
  every image has its segmentation map, of the same height and width.
"""
import json
import os
import os.path as osp
from typing import Dict, List

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


class DataLayoutError(FileNotFoundError):
    """The data root does not look like the data set the config reads."""


def _join(root: str, path: str) -> str:
    return path if osp.isabs(path) or not root else osp.join(root, path)


def check_image_folder_split(ds: dict) -> str:
    """mmpretrain ``ImageNet(data_root, split)``: annotation list and class folders."""
    root = ds.get('data_root', '')
    split = ds.get('split', '')
    ann = ds.get('ann_file', '') or (osp.join('meta', f'{split}.txt') if split else '')
    prefix = ds.get('data_prefix', '') or split
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', prefix.get('img', ''))
    img_dir = _join(root, prefix)
    if not ann:
        raise DataLayoutError(f'{ds.get("type")} at {root!r}: no split and no ann_file; '
                              'expected split=train|val with meta/<split>.txt')
    ann_path = _join(root, ann)
    if not osp.isfile(ann_path):
        raise DataLayoutError(f'{ann_path} is missing: expected the {split or "annotation"} '
                              'list, one "<path relative to '
                              f'{img_dir}> <label>" line per image (without it the images '
                              'would be found by scanning class folders instead)')
    if not osp.isdir(img_dir):
        raise DataLayoutError(f'{img_dir} is missing: expected the image folder of {ann_path}')
    n = 0
    with open(ann_path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise DataLayoutError(f'{ann_path} line {lineno}: {line.strip()!r} is not '
                                      '"<relative path> <integer label>"')
            if not osp.isfile(osp.join(img_dir, parts[0])):
                raise DataLayoutError(f'{ann_path} line {lineno} names '
                                      f'{osp.join(img_dir, parts[0])}, which does not exist')
            n += 1
    if n == 0:
        raise DataLayoutError(f'{ann_path} lists no images: expected "<path> <label>" lines')
    for entry in sorted(os.scandir(img_dir), key=lambda e: e.name):
        if entry.is_dir() and not any(e.name.lower().endswith(IMG_EXTENSIONS)
                                      for e in os.scandir(entry.path)):
            raise DataLayoutError(f'class folder {entry.path} is empty: expected its images '
                                  f'({", ".join(IMG_EXTENSIONS[:3])} ...)')
    return f'{ann_path}: {n} images, all present'


def check_coco(ds: dict) -> str:
    """COCO instances file and the images it names."""
    root = ds.get('data_root', '')
    ann_path = _join(root, ds.get('ann_file', ''))
    if not osp.isfile(ann_path):
        raise DataLayoutError(f'{ann_path} is missing: expected a COCO instances file '
                              '(annotations/instances_<split>2017.json)')
    try:
        with open(ann_path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DataLayoutError(f'{ann_path} is not JSON ({err})') from err
    missing = [k for k in ('images', 'annotations', 'categories') if k not in data]
    if missing:
        raise DataLayoutError(f'{ann_path} has no {missing}: expected a COCO instances file')
    prefix = ds.get('data_prefix', {})
    prefix = prefix.get('img', '') if isinstance(prefix, dict) else prefix
    img_dir = _join(root, prefix)
    for im in data['images']:
        path = osp.join(img_dir, im['file_name'])
        if not osp.isfile(path):
            raise DataLayoutError(f'{ann_path} names image {im["file_name"]!r} (id {im["id"]}) '
                                  f'but {path} does not exist')
    return (f'{ann_path}: {len(data["images"])} images, {len(data["annotations"])} objects, '
            f'{len(data["categories"])} categories, all images present')


def check_seg_pairs(ds: dict) -> str:
    """Every image has a segmentation map of the same size."""
    from PIL import Image
    root = ds.get('data_root', '')
    prefix = ds.get('data_prefix', {})
    img_dir = _join(root, prefix.get('img_path', ''))
    seg_dir = _join(root, prefix.get('seg_map_path', ''))
    img_suffix = ds.get('img_suffix', '.jpg')
    seg_suffix = ds.get('seg_map_suffix', '.png')
    for d, what in ((img_dir, 'images'), (seg_dir, 'segmentation maps')):
        if not osp.isdir(d):
            raise DataLayoutError(f'{d} is missing: expected the {what} folder')
    names = sorted(n for n in os.listdir(img_dir) if n.endswith(img_suffix))
    if not names:
        raise DataLayoutError(f'{img_dir} holds no *{img_suffix} images')
    for name in names:
        img_path = osp.join(img_dir, name)
        seg_path = osp.join(seg_dir, name[:-len(img_suffix)] + seg_suffix)
        if not osp.isfile(seg_path):
            raise DataLayoutError(f'{seg_path} is missing: expected the segmentation map of '
                                  f'{img_path}')
        with Image.open(img_path) as im, Image.open(seg_path) as seg:
            if im.size != seg.size:
                raise DataLayoutError(
                    f'{seg_path} is {seg.size[0]}x{seg.size[1]} (WxH) but its image '
                    f'{img_path} is {im.size[0]}x{im.size[1]}: expected the same size')
    return f'{img_dir}: {len(names)} images with same-size maps in {seg_dir}'


CHECKS = {
    'ImageNet': check_image_folder_split, 'CustomDataset': check_image_folder_split,
    'CocoDataset': check_coco, 'StrictCocoDataset': check_coco,
    'ADE20KDataset': check_seg_pairs,
}


def check_dataset(ds: dict) -> str:
    """Check one dataset config; returns a one-line summary (or why it was not checked)."""
    ds = dict(ds)
    while ds.get('type') in ('RepeatDataset', 'ClassBalancedDataset') and 'dataset' in ds:
        ds = dict(ds['dataset'])
    if ds.get('type') == 'ConcatDataset':
        return '; '.join(check_dataset(d) for d in ds['datasets'])
    check = CHECKS.get(ds.get('type'))
    if check is None:
        return f'no layout check for dataset type {ds.get("type")!r}'
    return check(ds)


def check_loaders(cfg) -> Dict[str, str]:
    """Check the train / val / test datasets of ``cfg``; returns a summary per loader."""
    out: Dict[str, str] = {}
    seen: List[dict] = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = (cfg.get(loader) or {}).get('dataset')
        if not ds:
            continue
        if ds in seen:
            out[loader] = 'same dataset as above'
            continue
        seen.append(ds)
        out[loader] = check_dataset(ds)
    return out

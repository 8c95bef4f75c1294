"""Build miniature ImageNet, COCO and ADE20K folders in the real layouts from the sample data.

    python tools/misc/make_mini_datasets.py OUT [--src ../shared/data]

``--src`` (default ``$MMMIXMAE_DATA`` or ``../shared/data``) must hold ``coco_voc3/`` and
``ade3/`` (see its README).  Writes::

    OUT/imagenet/train/<wnid>/<wnid>_<n>.JPEG     2 classes x 3 photos
    OUT/imagenet/val/ILSVRC2012_val_<8 digits>.JPEG  2 photos (flat, as the real val set)
    OUT/imagenet/meta/{train,val}.txt             "<relative path> <label>" lines
    OUT/coco/{train2017,val2017}/<12 digits>.jpg  3 and 2 VOC photos
    OUT/coco/annotations/instances_{train,val}2017.json
        COCO instances files: the 80 COCO categories (real ids 1-90 and supercategories),
        the VOC polygons with their class mapped to the COCO name
    OUT/ade/ADEChallengeData2016/{images,annotations}/{training,validation}/
        3 and 2 ADE20K scenes (.jpg) with their 150-class maps (.png, 0 = other)

The output is for dry runs and tests only; it is not a training set.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Sequence

#: ImageNet-1K class folders used (labels 0 and 1 of the standard sorted order)
WNIDS = ('n01440764', 'n01443537')

#: PASCAL VOC class name -> COCO category name (all 20 VOC classes exist in COCO)
VOC_TO_COCO = {
    'aeroplane': 'airplane', 'diningtable': 'dining table', 'motorbike': 'motorcycle',
    'sofa': 'couch', 'tv/monitor': 'tv', 'potted plant': 'potted plant',
}

#: COCO's category ids in the order of its 80 names (ids 12, 26, 29, 30, 45, 66, 68, 69, 71,
#: 83 are unused, as in the real files)
COCO_IDS = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45)) +
            list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91)))

#: (first id, supercategory) of COCO's id ranges
COCO_SUPER = ((1, 'person'), (2, 'vehicle'), (10, 'outdoor'), (16, 'animal'),
              (27, 'accessory'), (34, 'sports'), (44, 'kitchen'), (52, 'food'),
              (62, 'furniture'), (72, 'electronic'), (78, 'appliance'), (84, 'indoor'))


def coco_categories() -> List[dict]:
    """The 80 COCO categories ``[{'id', 'name', 'supercategory'}]`` (names from mmdet)."""
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    if len(names) != 80 or len(COCO_IDS) != 80:
        raise RuntimeError(f'expected 80 COCO names and ids, got {len(names)} and '
                           f'{len(COCO_IDS)}')
    cats = []
    for cid, name in zip(COCO_IDS, names):
        sup = [s for first, s in COCO_SUPER if cid >= first][-1]
        cats.append(dict(id=cid, name=name, supercategory=sup))
    return cats


def _need(path: str) -> str:
    if not osp.exists(path):
        raise FileNotFoundError(f'{path} is missing: make_mini_datasets.py reads the sample '
                                'data of ../shared/data (coco_voc3/, ade3/); set --src')
    return path


def _save_jpeg(src: str, dst: str) -> None:
    from PIL import Image
    os.makedirs(osp.dirname(dst), exist_ok=True)
    with Image.open(src) as im:
        im.convert('RGB').save(dst, 'JPEG', quality=90)


def make_imagenet(out: str, photos: Sequence[str]) -> Dict[str, int]:
    """``photos``: 8 image paths; 3 per class for train, 1 per class for val."""
    root = osp.join(out, 'imagenet')
    train_lines, val_lines = [], []
    for label, wnid in enumerate(WNIDS):
        for k, src in enumerate(photos[3 * label:3 * label + 3]):
            rel = f'{wnid}/{wnid}_{k + 1}.JPEG'
            _save_jpeg(src, osp.join(root, 'train', rel))
            train_lines.append(f'{rel} {label}')
    for label, src in enumerate(photos[6:8]):
        rel = f'ILSVRC2012_val_{label + 1:08d}.JPEG'
        _save_jpeg(src, osp.join(root, 'val', rel))
        val_lines.append(f'{rel} {label}')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for name, lines in (('train', train_lines), ('val', val_lines)):
        with open(osp.join(root, 'meta', f'{name}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return dict(train=len(train_lines), val=len(val_lines))


def _coco_split(voc: dict, image_ids: Sequence[int], first_id: int, img_dir: str,
                src_root: str, cats: List[dict]) -> dict:
    by_name = {c['name']: c['id'] for c in cats}
    voc_names = {c['id']: c['name'] for c in voc['categories']}
    images, anns = [], []
    for k, old_id in enumerate(image_ids):
        old = next(im for im in voc['images'] if im['id'] == old_id)
        new_id = first_id + k
        name = f'{new_id:012d}.jpg'
        _save_jpeg(osp.join(src_root, old['file_name']), osp.join(img_dir, name))
        images.append(dict(id=new_id, file_name=name, width=old['width'],
                           height=old['height'], license=1))
        for a in voc['annotations']:
            if a['image_id'] != old_id:
                continue
            voc_name = voc_names[a['category_id']]
            coco_name = VOC_TO_COCO.get(voc_name, voc_name)
            if coco_name not in by_name:
                raise KeyError(f'VOC class {voc_name!r} has no COCO category')
            anns.append(dict(id=len(anns) + 1 + 1000 * first_id, image_id=new_id,
                             category_id=by_name[coco_name], segmentation=a['segmentation'],
                             area=a['area'], bbox=a['bbox'], iscrowd=a.get('iscrowd', 0)))
    return dict(info=dict(description='mmmixmae miniature COCO (PASCAL VOC 2011 photos)'),
                licenses=[dict(id=1, name='see ../shared/data/README.md', url='')],
                images=images, annotations=anns, categories=cats)


def make_coco(out: str, src: str) -> Dict[str, int]:
    voc_root = osp.join(src, 'coco_voc3')
    with open(_need(osp.join(voc_root, 'annotations.json'))) as f:
        voc = json.load(f)
    ids = sorted(im['id'] for im in voc['images'])
    cats = coco_categories()
    root = osp.join(out, 'coco')
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    counts = {}
    for split, sel, first in (('train', ids, 1), ('val', ids[:2], 101)):
        data = _coco_split(voc, sel, first, osp.join(root, f'{split}2017'), voc_root, cats)
        with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
            json.dump(data, f)
        counts[split] = len(data['images'])
    return counts


def make_ade(out: str, src: str) -> Dict[str, int]:
    ade = osp.join(src, 'ade3')
    names = sorted(n[:-4] for n in os.listdir(_need(osp.join(ade, 'images', 'validation')))
                   if n.endswith('.jpg'))
    root = osp.join(out, 'ade', 'ADEChallengeData2016')
    counts = {}
    for split, tag, sel in (('training', 'train', names), ('validation', 'val', names[:2])):
        for k, name in enumerate(sel):
            new = f'ADE_{tag}_{k + 1:08d}'
            _save_jpeg(osp.join(ade, 'images', 'validation', name + '.jpg'),
                       osp.join(root, 'images', split, new + '.jpg'))
            os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
            shutil.copyfile(_need(osp.join(ade, 'annotations', 'validation', name + '.png')),
                            osp.join(root, 'annotations', split, new + '.png'))
        counts[split] = len(sel)
    return counts


def photo_list(src: str) -> List[str]:
    """8 photo paths: the 3 VOC photos, the 3 ADE scenes, then the first of each again."""
    voc = osp.join(src, 'coco_voc3', 'JPEGImages')
    ade = osp.join(src, 'ade3', 'images', 'validation')
    vocs = sorted(osp.join(voc, n) for n in os.listdir(_need(voc)) if n.endswith('.jpg'))
    ades = sorted(osp.join(ade, n) for n in os.listdir(_need(ade)) if n.endswith('.jpg'))
    if len(vocs) < 3 or len(ades) < 3:
        raise FileNotFoundError(f'expected 3 photos in {voc} and 3 in {ade}, found '
                                f'{len(vocs)} and {len(ades)}')
    return vocs[:3] + ades[:3] + [vocs[0], ades[0]]


def make_all(out: str, src: str) -> Dict[str, Dict[str, int]]:
    """Write all three layouts under ``out``; returns image counts per set and split."""
    return dict(imagenet=make_imagenet(out, photo_list(src)), coco=make_coco(out, src),
                ade=make_ade(out, src))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out', help='output folder (created)')
    parser.add_argument('--src', default=os.environ.get('MMMIXMAE_DATA', '../shared/data'),
                        help='sample data folder with coco_voc3/ and ade3/')
    args = parser.parse_args(argv)
    counts = make_all(args.out, args.src)
    for name, splits in counts.items():
        print(f'{name}: ' + ', '.join(f'{k} {v} images' for k, v in splits.items()))


if __name__ == '__main__':
    sys.exit(main())

"""The miniature data sets have the real layouts, and the real dataset classes read them;
a data root that does not match stops with the file and what was expected."""
import json
import os
import os.path as osp
import shutil

import pytest
from mmengine.registry import DefaultScope


def test_layouts_and_real_dataset_classes(mini_data):
    inet = osp.join(mini_data, 'imagenet')
    assert sorted(os.listdir(inet)) == ['meta', 'train', 'val']
    assert sorted(os.listdir(osp.join(inet, 'meta'))) == ['train.txt', 'val.txt']
    from mmpretrain.datasets import ImageNet
    train = ImageNet(data_root=inet, split='train', pipeline=[])
    val = ImageNet(data_root=inet, split='val', pipeline=[])
    assert (len(train), len(val)) == (6, 2)
    assert sorted(train.get_gt_labels().tolist()) == [0, 0, 0, 1, 1, 1]
    assert val.get_gt_labels().tolist() == [0, 1]
    assert len(train.CLASSES) == 1000

    coco = osp.join(mini_data, 'coco')
    assert sorted(os.listdir(coco)) == ['annotations', 'train2017', 'val2017']
    with open(osp.join(coco, 'annotations', 'instances_train2017.json')) as f:
        ann = json.load(f)
    from mmdet.datasets import CocoDataset
    names = [c['name'] for c in ann['categories']]
    assert names == list(CocoDataset.METAINFO['classes'])
    ids = [c['id'] for c in ann['categories']]
    assert len(ids) == 80 and ids[0] == 1 and ids[-1] == 90 and 12 not in ids
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = CocoDataset(data_root=coco, ann_file='annotations/instances_train2017.json',
                          data_prefix=dict(img='train2017/'), pipeline=[])
        det_val = CocoDataset(data_root=coco, ann_file='annotations/instances_val2017.json',
                              data_prefix=dict(img='val2017/'), pipeline=[], test_mode=True)
    assert (len(det), len(det_val)) == (3, 2)
    assert sum(len(det[i]['instances']) for i in range(3)) == 12
    person = CocoDataset.METAINFO['classes'].index('person')
    assert [i['bbox_label'] for i in det[0]['instances']].count(person) >= 1

    ade = osp.join(mini_data, 'ade', 'ADEChallengeData2016')
    for top in ('images', 'annotations'):
        assert sorted(os.listdir(osp.join(ade, top))) == ['training', 'validation']
    from mmseg.datasets import ADE20KDataset
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = ADE20KDataset(data_root=ade, data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'), pipeline=[])
    assert len(seg) == 3 and len(seg.metainfo['classes']) == 150


def _copy(mini_data, tmp_path, name):
    dst = str(tmp_path / name)
    shutil.copytree(osp.join(mini_data, name), dst)
    return dst


def test_layout_errors_name_the_file(mini_data, tmp_path, misc):
    layout = misc('data_layout')
    inet = _copy(mini_data, tmp_path, 'imagenet')
    ds = dict(type='ImageNet', data_root=inet, split='train')
    assert '6 images' in layout.check_dataset(ds)
    os.remove(osp.join(inet, 'meta', 'train.txt'))
    with pytest.raises(layout.DataLayoutError, match=r'meta/train\.txt is missing'):
        layout.check_dataset(ds)

    inet = _copy(mini_data, tmp_path / 'b', 'imagenet')
    os.makedirs(osp.join(inet, 'train', 'n01484850'))
    with pytest.raises(layout.DataLayoutError, match=r'class folder .*n01484850 is empty'):
        layout.check_dataset(dict(type='ImageNet', data_root=inet, split='train'))

    coco = _copy(mini_data, tmp_path, 'coco')
    ds = dict(type='CocoDataset', data_root=coco, ann_file='annotations/instances_val2017.json',
              data_prefix=dict(img='val2017/'))
    assert '2 images, ' in layout.check_dataset(ds)
    os.remove(osp.join(coco, 'val2017', '000000000102.jpg'))
    with pytest.raises(layout.DataLayoutError,
                       match=r"names image '000000000102\.jpg' \(id 102\) but .*val2017/"
                             r"000000000102\.jpg does not exist"):
        layout.check_dataset(ds)

    ade = _copy(mini_data, tmp_path, 'ade')
    root = osp.join(ade, 'ADEChallengeData2016')
    ds = dict(type='ADE20KDataset', data_root=root, data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation'))
    assert '2 images' in layout.check_dataset(ds)
    from PIL import Image
    seg_path = osp.join(root, 'annotations', 'validation', 'ADE_val_00000001.png')
    with Image.open(seg_path) as seg:
        w, h = seg.size
        seg.resize((w // 2, h // 2), Image.NEAREST).save(seg_path)
    with pytest.raises(layout.DataLayoutError,
                       match=rf'ADE_val_00000001\.png is {w // 2}x{h // 2} \(WxH\) but its '
                             rf'image .*ADE_val_00000001\.jpg is {w}x{h}'):
        layout.check_dataset(ds)


def test_bad_meta_line(mini_data, tmp_path, misc):
    layout = misc('data_layout')
    inet = _copy(mini_data, tmp_path, 'imagenet')
    with open(osp.join(inet, 'meta', 'val.txt'), 'a') as f:
        f.write('ILSVRC2012_val_00000003.JPEG 1\n')
    with pytest.raises(layout.DataLayoutError, match=r'val\.txt line 3 names .*'
                                                     r'ILSVRC2012_val_00000003\.JPEG'):
        layout.check_dataset(dict(type='ImageNet', data_root=inet, split='val'))

# The tiny MixMAE Mask R-CNN of mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py on the instance
# annotations of the 3 ADE20K street scenes in $MMMIXMAE_DATA/ade3 (95 objects, the 150 ADE
# class names as categories 1-150, file names relative to images/validation/).
_base_ = './mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py'
# Sample data: $MMMIXMAE_DATA, or ../shared/data next to the repository (a relative
# MMMIXMAE_DATA is taken from the repository root). tools/train.py checks `required_data`
# before building anything.
import os
data_home = os.path.normpath(
    os.path.join('{{ fileDirname }}/../..', os.environ.get('MMMIXMAE_DATA', '../shared/data')))

classes = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain',
    'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug',
    'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub',
    'railing', 'cushion', 'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter',
    'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs',
    'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge',
    'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench',
    'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar',
    'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning',
    'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track', 'apparel', 'pole',
    'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van',
    'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool',
    'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball',
    'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake',
    'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light',
    'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower',
    'radiator', 'glass', 'clock', 'flag',
)
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=150), mask_head=dict(num_classes=150)))
data_root = data_home + '/ade3/'
required_data = dict(key='train_dataloader.dataset.data_root', must_hold=['instances_ade3.json', 'images/validation'],
                     source="the 3-image sample data of this project's tests (coco_voc3: labelme's instance-segmentation example, PASCAL VOC 2011 photos; ade3: 3 ADE20K validation scenes), see README.md, 'Sample data'")
ann_file = 'instances_ade3.json'
img_prefix = 'images/validation/'
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=ann_file,
                                     data_prefix=dict(img=img_prefix),
                                     metainfo=dict(classes=classes)))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=ann_file,
                                   data_prefix=dict(img=img_prefix),
                                   metainfo=dict(classes=classes)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + ann_file)
test_evaluator = val_evaluator

# 95 mostly small objects need more steps than the 12 VOC objects
max_iters = 120
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))

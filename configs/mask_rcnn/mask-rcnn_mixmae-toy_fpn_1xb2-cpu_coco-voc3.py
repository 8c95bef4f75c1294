# A tiny MixMAE Mask R-CNN that trains on one CPU in a couple of minutes: the real base 1x
# config (same detector, layer-decay AdamW, StrictCocoDataset, CocoMetric) with a tiny backbone,
# thin FPN/heads, 256 px images and an iteration-based schedule that overfits the 3 VOC photos
# of $MMMIXMAE_DATA/coco_voc3 (train = val).
#
# The backbone is the tiny encoder of configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py
# (same arch, image size and windows), initialised from that demo's checkpoint:
#   python tools/train.py configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py
#   python tools/train.py configs/mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py
# (another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH).
_base_ = './mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'
# Sample data: $MMMIXMAE_DATA, or ../shared/data next to the repository (a relative
# MMMIXMAE_DATA is taken from the repository root). tools/train.py checks `required_data`
# before building anything.
import os
data_home = os.path.normpath(
    os.path.join('{{ fileDirname }}/../..', os.environ.get('MMMIXMAE_DATA', '../shared/data')))

pretrained = 'work_dirs/mixmae_swin-toy-w4_1xb4-20it_cpu/iter_20.pth'
toy_arch = dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
fpn_channels = 64
model = dict(
    backbone=dict(
        arch=toy_arch,
        img_size=64,
        window_size=(4, 4, 2, 2),
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=fpn_channels),
    # anchors of 16-256 px instead of 32-512 px: the images are 256 px, not COCO's 800-1333
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels,
                  anchor_generator=dict(scales=[4])),
    # CPU speed-ups for 3 images with 1-6 objects each: fixed 2x2 RoIAlign sampling (mmcv's
    # adaptive sampling is slow on CPU), fewer proposals and RoI samples than COCO's
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels,
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2)),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256, num_classes=20),
        mask_roi_extractor=dict(out_channels=fpn_channels,
                                roi_layer=dict(type='RoIAlign', output_size=14,
                                               sampling_ratio=2)),
        mask_head=dict(in_channels=fpn_channels, conv_out_channels=fpn_channels,
                       num_classes=20)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200)))

# The labelme export lists '_background_' as category 0: it is not an object class (mmdet's
# softmax has its own background logit), so it is left out and the 20 VOC classes (ids 1-20,
# in file order) are labels 0-19.  StrictCocoDataset refuses any annotation outside them.
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa',
           'train', 'tv/monitor')
data_root = data_home + '/coco_voc3/'
required_data = dict(key='train_dataloader.dataset.data_root', must_hold=['annotations.json', 'JPEGImages'],
                     source="the 3-image sample data of this project's tests (coco_voc3: labelme's instance-segmentation example, PASCAL VOC 2011 photos; ade3: 3 ADE20K validation scenes), see README.md, 'Sample data'")
ann_file = 'annotations.json'
img_prefix = ''  # file_name already includes 'JPEGImages/'
img_scale = (256, 256)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(type='StrictCocoDataset', data_root=data_root, ann_file=ann_file,
                 data_prefix=dict(img=img_prefix), metainfo=dict(classes=classes),
                 filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(type='StrictCocoDataset', data_root=data_root, ann_file=ann_file,
                 data_prefix=dict(img=img_prefix), metainfo=dict(classes=classes),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + ann_file, metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_iters = 60
train_cfg = dict(_delete_=True, type='ResumableIterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1),
]
# fp32 on CPU; same constructor and layer decay as the real config
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=10.))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'), mp_cfg=dict(mp_start_method='fork',
                                                          opencv_num_threads=0))
randomness = dict(seed=0, deterministic=True)

_base_ = './_base_/mixmae_pretrain_in1k.py'
# Sample data: $MMMIXMAE_DATA, or ../shared/data next to the repository (a relative
# MMMIXMAE_DATA is taken from the repository root). tools/train.py checks `required_data`
# before building anything.
import os
data_home = os.path.normpath(
    os.path.join('{{ fileDirname }}/../..', os.environ.get('MMMIXMAE_DATA', '../shared/data')))
# A tiny MixMAE that trains on one CPU in seconds (tests, smoke runs).  Images come from a
# plain folder (``data_root``, overridable with --cfg-options); 64 px crops, 2x2 mixing grid.
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
                  img_size=64, window_size=(4, 4, 2, 2)),
    neck=dict(in_channels=128, embed_dims=32, depth=1, num_heads=2, img_size=64))
data_root = data_home + '/coco_voc3/JPEGImages'
# any folder of images will do (--cfg-options train_dataloader.dataset.data_root=DIR)
required_data = dict(key='train_dataloader.dataset.data_root', must_hold=[],
                     describe='images (any folder of photos)',
                     source="the 3-image sample data of this project's tests (coco_voc3: labelme's instance-segmentation example, PASCAL VOC 2011 photos; ade3: 3 ADE20K validation scenes), see README.md, 'Sample data'")
train_pipeline = [
    dict(type='LoadImageRobust', on_error='raise'),  # 'skip': log, count and skip bad files
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.2, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='', with_label=False,
                 pipeline=train_pipeline, _delete_=True))
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', T_max=15, eta_min=0.0, by_epoch=False, begin=5, end=20),
]
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=20, _delete_=True)
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(type='AtomicCheckpointHook', interval=10, by_epoch=False,
                                     max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=4)
randomness = dict(seed=0, diff_rank_seed=True, deterministic=True)

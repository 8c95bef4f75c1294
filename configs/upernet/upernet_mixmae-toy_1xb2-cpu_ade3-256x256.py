# A tiny MixMAE UperNet that trains on one CPU in a couple of minutes: the real base config
# (UperNet + auxiliary FCN head, layer-decay AdamW, ADE20KDataset with reduce_zero_label,
# IoUMetric) with the tiny backbone of configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py,
# thin heads with BN instead of SyncBN, 256 px images and an iteration-based schedule that
# overfits the 3 ADE20K scenes of $MMMIXMAE_DATA/ade3 (train = val).
#   python tools/train.py configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py
#   python tools/train.py configs/upernet/upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py
_base_ = './upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py'
# Sample data: $MMMIXMAE_DATA, or ../shared/data next to the repository (a relative
# MMMIXMAE_DATA is taken from the repository root). tools/train.py checks `required_data`
# before building anything.
import os
data_home = os.path.normpath(
    os.path.join('{{ fileDirname }}/../..', os.environ.get('MMMIXMAE_DATA', '../shared/data')))

pretrained = 'work_dirs/mixmae_swin-toy-w4_1xb4-20it_cpu/iter_20.pth'
crop_size = (256, 256)
norm_cfg = dict(type='BN', requires_grad=True)  # one CPU process: no SyncBN
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
        img_size=64,
        window_size=(4, 4, 2, 2),
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=32, norm_cfg=norm_cfg))

data_root = data_home + '/ade3/'
required_data = dict(key='train_dataloader.dataset.data_root',
                     must_hold=['images/validation', 'annotations/validation'],
                     source="the 3-image sample data of this project's tests (coco_voc3: labelme's instance-segmentation example, PASCAL VOC 2011 photos; ade3: 3 ADE20K validation scenes), see README.md, 'Sample data'")
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # the dataset's reduce_zero_label: 0 (other) -> 255, ignored
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
data_prefix = dict(img_path='images/validation', seg_map_path='annotations/validation')
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, data_prefix=data_prefix, reduce_zero_label=True,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, data_prefix=data_prefix, reduce_zero_label=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 120
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=10, end=max_iters, by_epoch=False),
]
# fp32 on CPU, a high lr to overfit 3 images quickly; same constructor and layer decay
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=3e-3))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)

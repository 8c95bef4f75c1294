_base_ = './_base_/mixmae_pretrain_in1k.py'
# CPU demo of MixMAE on mmpretrain's ConvNeXt through MixMAEAdapter (mixed depthwise
# convolutions), on the photos bundled with scikit-image/scikit-learn; same recipe and decoder
# as mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py.
img_size = 128
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter', img_size=img_size, backbone=dict(type='mmpretrain.ConvNeXt',
                  arch=dict(depths=[1, 1, 2, 1], channels=[32, 64, 128, 256]),
                  drop_path_rate=0.0, out_indices=(3, ), gap_before_final_norm=False)),
    neck=dict(in_channels=256, embed_dims=64, depth=1, num_heads=2, img_size=img_size))
train_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False, pin_memory=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='PackagedPhotos', max_size=256, pipeline=train_pipeline, _delete_=True))
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        flat_decay_mult=0.0))
max_iters = 600
warmup_iters = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, _delete_=True)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(type='AtomicCheckpointHook', interval=300, by_epoch=False,
                                     max_keep_ckpts=2, save_last=True))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=16)
randomness = dict(seed=0, diff_rank_seed=True)
work_dir = './work_dirs/demo_convnext_adapter'

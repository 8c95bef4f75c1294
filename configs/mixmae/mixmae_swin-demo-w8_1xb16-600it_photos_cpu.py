_base_ = './_base_/mixmae_pretrain_in1k.py'
# The `make demo` run: a tiny MixMAE pretrained on one CPU in a few minutes on the sample
# photographs shipped inside scikit-image and scikit-learn (PackagedPhotos: astronaut,
# chelsea, coffee, hubble_deep_field, rocket, motorcycle_left/right, retina, ihc, china,
# flower; decoded once, longer side shrunk to 256 px, never downloaded).
# Recipe of the official one at a small scale: random resized crops (area 0.2-1, bicubic) and
# flips, mask ratio 0.5 on the 32-px cell grid, dual reconstruction of norm-pix targets,
# AdamW(0.9, 0.95) with warm-up and cosine decay.  Windows scale with the image like W14
# at 224 (stage grids 32/16/8/4 -> windows 8/8/8/4: the last two stages attend globally).
# PackagedPhotos is registered by mmmixmae.datasets, which the base config's custom_imports load
img_size = 128
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
                  img_size=img_size, window_size=(8, 8, 8, 4)),
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
work_dir = './work_dirs/demo'

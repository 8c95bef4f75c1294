# Shared MixMAE pretraining recipe (official Sense-X/MixMIM exp/*/pretrain.sh):
# ImageNet-1K in mmpretrain's layout, RandomResizedCrop(224, 0.2-1.0, bicubic) + flip,
# AdamW(0.9, 0.95), lr = 1.5e-4 x total batch / 256, weight decay 0.05 without decay for 1-D
# parameters and biases, 40 linear warm-up epochs then half-cosine to 0 (per iteration),
# drop_last=True, mixed precision (bfloat16: a deliberate difference, see optim_wrapper).
# Arch-specific configs set the model and the number of epochs.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms'],
                      allow_failed_imports=False)

# ---------------------------------------------------------------- data
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    # like LoadImageFromFile, but an undecodable file stops the run naming the file;
    # on_error='skip' skips it with a warning and a running count (docs/en/reliability.md)
    dict(type='LoadImageRobust', on_error='raise'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,  # x 16 GPUs = 2048
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    # official main_pretrain.py: drop_last=True.  Keeping the short last batch would give an
    # odd-sized batch whose middle image is mixed with itself (sample i is mixed with B-1-i)
    # and one extra iteration per epoch (626 instead of 625 on ImageNet at 16 x 128)
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))

# ---------------------------------------------------------------- model
model = dict(
    type='MixMAE',
    mask_ratio=0.5,
    range_mask_ratio=0.0,
    backbone=dict(type='MixMAESwin', arch='base', img_size=224, window_size=(14, 14, 14, 7),
                  drop_path_rate=0.0, fill_mode='mix', attn_isolation=True,
                  # 'dense' | 'grouped' | 'auto' (grouped in fp32, dense under autocast;
                  # see docs/en/benchmarks.md)
                  attn_path='auto',
                  # True: torch.compile the blocks' token-wise parts (off: measured no gain
                  # on the CPU, see docs/en/benchmarks.md; not yet measured on a GPU)
                  compile=False),
    # the decoder's in_channels / img_size / encoder_stride and the head's patch_size are
    # taken from the backbone by MixMAE (a stated value must agree, or the build fails)
    neck=dict(type='MixMAEDecoder', embed_dims=512, depth=8, num_heads=16, mlp_ratio=4.,
              compile=False),
    head=dict(type='MixMAEPretrainHead', norm_pix=True, eps=1e-6))

# ---------------------------------------------------------------- schedule
total_batch = 2048
optim_wrapper = dict(
    type='AmpOptimWrapper',
    # differs from the official code on purpose: bfloat16 instead of torch.cuda.amp's float16
    # (float32's exponent range, no loss scaling needed; what CPU autocast supports).  The
    # official float16 path: --cfg-options optim_wrapper.dtype=float16 (dynamic loss scale
    # below).  See docs/en/pretrain.md, "Where this recipe differs".
    dtype='bfloat16',
    loss_scale='dynamic',
    # fused=True: torch's single-kernel AdamW (same update rule; 10x+ faster than the
    # per-tensor loop on CPU, see docs/en/benchmarks.md)
    optimizer=dict(type='AdamW', lr=1.5e-4 * total_batch / 256, betas=(0.9, 0.95),
                   weight_decay=0.05, fused=True),
    # official rule: no decay for 1-D parameters and biases; mask token and
    # relative-position tables are decayed
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
warmup_epochs = 40
max_epochs = 300
param_scheduler = [
    # linear from (almost) 0: mmengine's LinearLR needs a start factor > 0
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
# continues an interrupted epoch at the next unseen batch on --resume
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=total_batch)

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
# reliability (docs/en/reliability.md): per-rank RNG state in checkpoints and strict
# weight checks, rank-mean loss in the log, stop on NaN/Inf loss or fp16 scale collapse
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
]
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(window_size=10, custom_cfg=[dict(data_src='', method='mean',
                                                      window_size='global')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True)

# MixMAE fine-tuning on ImageNet-1K: the official Sense-X/MixMIM recipe for Swin-B/W14 at 224 px
# (exp/base_600ep/finetune.sh on top of main_finetune.py's defaults, util/lr_decay.py,
# util/lr_sched.py, util/datasets.py).  Size- and arch-specific configs override the model,
# the crop size, the layer decay and the number of epochs.  See ./README.md for the table.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms'],
                      allow_failed_imports=False)

# ---------------------------------------------------------------- data
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],  # RGB, timm's IMAGENET_DEFAULT_MEAN x 255
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]
# timm create_transform(is_training=True): RandomResizedCrop (0.08-1, 3/4-4/3, bicubic), flip,
# RandAugment rand-m9-mstd0.5-inc1, random erasing p=0.25 in 'pixel' mode (per-pixel normal
# noise = N(mean, std) before normalization)
train_pipeline = [
    # an undecodable file stops the run naming it (on_error='skip' to skip and count)
    dict(type='LoadImageRobust', on_error='raise'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
# evaluation: resize the short side to 224 / (224 / 256) = 256, center crop 224 (bicubic)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,  # x 8 GPUs = 1024
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# ---------------------------------------------------------------- model
model = dict(
    type='ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MixMAESwin',
        arch='base',
        img_size=224,
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.1,
        out_indices=(3, ),
        out_type='avg_featmap',  # global average pooling of the final-normed tokens
        # True: torch.compile the blocks' token-wise parts (docs/en/benchmarks.md)
        compile=False,
        # set to your pretraining checkpoint: an mmmixmae MixMAE checkpoint, an official
        # Sense-X/MixMIM one or a converted one (see docs/en/finetune.md)
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        # mixup/cutmix give soft targets; LabelSmoothLoss smooths them like timm's mixup_target
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # official: trunc_normal_(head.weight, std=2e-5) (bounds +-2, i.e. a plain normal),
        # bias 0
        init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5, bias=0.)),
    # timm Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch')
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

# ---------------------------------------------------------------- schedule
total_batch = 1024
base_lr = 5e-4 * total_batch / 256  # --blr 5e-4
min_lr = 1e-6
warmup_epochs = 5
max_epochs = 100
optim_wrapper = dict(
    type='AmpOptimWrapper',  # official: torch.cuda.amp autocast + GradScaler, no clipping
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    # official param_groups_lrd: scale rate^(N - layer_id) with the MixMIM layer ids
    # (MixMAESwin.get_layer_depth); weight decay 0 for every 1-D parameter (norms, biases)
    paramwise_cfg=dict(layer_decay_rate=0.7, flat_decay_mult=0.0))
param_scheduler = [
    # linear warm-up from (almost) 0 over 5 epochs, per iteration
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    # half cosine to min_lr; the official schedule sets group lr = schedule(t) * lr_scale, so
    # each group ends at min_lr * lr_scale: eta_min_ratio (relative to the group's lr)
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min_ratio=min_lr / base_lr, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
# resumes an interrupted epoch at the next unseen batch (docs/en/reliability.md)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=total_batch)

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=5, max_keep_ckpts=2, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
# exact resume (RNG state per rank), rank-mean loss in the log, stop on a non-finite loss
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
]
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True)

# Tiny fine-tuning run: ImageClassifier(MixMAESwin + LinearClsHead) on a labelled folder
# (class_0/, class_1/, class_2/: crops of three real photos; data_root set by the tests),
# Mixup/CutMix, label smoothing, drop path, layer-wise lr decay.  12 images / batch 3 =
# 4 iterations per epoch, 3 epochs, a checkpoint every 3 iterations.
default_scope = 'mmpretrain'
custom_imports = dict(
    imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms',
             'reliability_testkit'],
    allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MixMAESwin', arch=dict(embed_dims=16, depths=[1, 1, 2, 1],
                                               num_heads=[1, 2, 2, 4]),
                  img_size=64, window_size=(4, 4, 2, 2), drop_path_rate=0.1,
                  out_type='avg_featmap'),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=3, in_channels=128,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
              cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
data_preprocessor = dict(num_classes=3, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageRobust'),
    dict(type='RandomResizedCrop', scale=64, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=3, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root='', data_prefix='', with_label=True,
                 pipeline=train_pipeline))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', T_max=9, eta_min=1e-5, by_epoch=False, begin=3, end=12),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=3)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=3, by_epoch=False, max_keep_ckpts=-1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='RecordBatchHook'),
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_processor = dict(window_size=1)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=5, diff_rank_seed=True, deterministic=True)

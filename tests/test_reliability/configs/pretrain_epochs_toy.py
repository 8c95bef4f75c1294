# Tiny MixMAE pretraining, epoch based: 16 images / batch 4 = 4 iterations per epoch,
# 3 epochs, a checkpoint every 3 iterations (so most land mid-epoch).  data_root is set
# by the tests (--cfg-options train_dataloader.dataset.data_root=...).
_base_ = '../../../configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py'
custom_imports = dict(
    imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms',
             'reliability_testkit'],
    allow_failed_imports=False)
model = dict(range_mask_ratio=0.1, backbone=dict(drop_path_rate=0.1))
train_dataloader = dict(batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True))
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=3, _delete_=True)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', T_max=9, eta_min=1e-5, by_epoch=False, begin=3, end=12),
]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(type='AtomicCheckpointHook', interval=3, by_epoch=False,
                                     max_keep_ckpts=-1))
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='RecordBatchHook'),
]
log_processor = dict(window_size=1)
randomness = dict(seed=3, diff_rank_seed=True, deterministic=True)

_base_ = './mixmae_swin-toy-w4_1xb4-20it_cpu.py'
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2),
    train_micro_batch_size_per_gpu=2,
    gradient_accumulation_steps=1)
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        flat_decay_mult=0.0))
train_dataloader = dict(batch_size=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=6, eta_min=0.0, by_epoch=False, begin=2, end=8),
]
train_cfg = dict(max_iters=8)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False,
                                     max_keep_ckpts=2, _delete_=True))
auto_scale_lr = dict(base_batch_size=4)

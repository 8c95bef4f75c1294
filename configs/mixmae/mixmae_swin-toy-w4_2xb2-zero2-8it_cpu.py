_base_ = './mixmae_swin-toy-w4_1xb4-20it_cpu.py'
# The CPU toy MixMAE with DeepSpeed ZeRO stage 2 over 2 gloo processes (global batch 4 = 2 x 2),
# through mmengine's FlexibleRunner + DeepSpeedStrategy.  Needs deepspeed
# (tools/install/setup_env.sh installs it) and a distributed launcher:
#   bash tools/dist_train.sh configs/mixmae/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu.py 2
# ZeRO stage 3: add --cfg-options strategy.zero_optimization.stage=3.
# Full precision (no bf16) so that it matches the one-process run of the parent config with
# the same 4 images per step (tests/test_sharded/test_deepspeed_toy.py).  Checkpoints are
# folders (iter_N.pth/ with deepspeed's *_model_states.pt and *_optim_states.pt files),
# resumable with the same number of ranks; one full file:
# tools/model_converters/deepspeed_to_full.py.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2),
    gradient_clipping=0.0,  # deepspeed 0.19 clips to 1.0 unless told; the parent does not clip
    train_micro_batch_size_per_gpu=2,  # = train_dataloader.batch_size
    gradient_accumulation_steps=1)
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
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

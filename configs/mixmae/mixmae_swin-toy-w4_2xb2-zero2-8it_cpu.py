_base_ = './mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu.py'
# The CPU toy MixMAE with DeepSpeed ZeRO stage 2 over 2 gloo processes (global batch 4 = 2 x 2),
# through mmengine's FlexibleRunner + DeepSpeedStrategy: the FSDP toy's schedule, batch and
# checkpoints, with DeepSpeed in place of FSDP.  Needs deepspeed
# (tools/install/setup_env.sh installs it) and a distributed launcher:
#   bash tools/dist_train.sh configs/mixmae/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu.py 2
# ZeRO stage 3: add --cfg-options strategy.zero_optimization.stage=3.
# Full precision (no bf16) so that it matches a one-process run of the toy (1xb4) config with
# the same 4 images per step (tests/test_sharded/test_deepspeed_toy.py).  Checkpoints are
# folders (iter_N.pth/ with deepspeed's *_model_states.pt and *_optim_states.pt files),
# resumable with the same number of ranks; one full file:
# tools/model_converters/deepspeed_to_full.py.
strategy = dict(
    _delete_=True,
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2),
    gradient_clipping=0.0,  # deepspeed 0.19 clips to 1.0 unless told; the toy does not clip
    train_micro_batch_size_per_gpu=2,  # = train_dataloader.batch_size
    gradient_accumulation_steps=1)
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})

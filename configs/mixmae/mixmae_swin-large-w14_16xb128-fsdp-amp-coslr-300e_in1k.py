_base_ = ['./mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py', './_base_/fsdp_block_bf16.py']
# MixMAE-large pretraining as its DDP config, sharded with FSDP (FlexibleRunner): same model,
# data, batch (16 GPUs x 128) and schedule.  Launch with a distributed launcher only:
#   bash tools/dist_train.sh configs/mixmae/mixmae_swin-large-w14_16xb128-fsdp-amp-coslr-300e_in1k.py 8
# What sharding changes (docs/en/pretrain.md, "Scaling up"):
# bfloat16 by the strategy's mixed precision instead of autocast, hence a plain OptimWrapper
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# sharded checkpoints are folders (rank<i>.pth): mmengine's hook, not the atomic file rename
default_hooks = dict(checkpoint=dict(_delete_=True, type='CheckpointHook', interval=1,
                                     max_keep_ckpts=3))

_base_ = ['./mixmae-swin-large-w14_8xb128-amp-coslr-50e_in1k.py', '../_base_/fsdp_block_bf16.py']
# Swin-L/W14 fine-tuning as its DDP config, sharded with FSDP (FlexibleRunner): same model,
# data, batch (8 GPUs x 128), layer decay and schedule.  Launch with a distributed launcher:
#   bash tools/dist_train.sh configs/mixmae/benchmarks/mixmae-swin-large-w14_8xb128-fsdp-amp-coslr-50e_in1k.py 8
# The pretrained weights: one full file (init_cfg=Pretrained); consolidate a sharded
# pretraining checkpoint first with tools/model_converters/fsdp_sharded_to_full.py.
# What sharding changes (docs/en/pretrain.md, "Scaling up"):
# bfloat16 by the strategy's mixed precision instead of autocast, hence a plain OptimWrapper;
# the layer-decay constructor is kept (its groups equal DDP's parameter by parameter)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     constructor={{_base_.optim_wrapper.constructor}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# sharded checkpoints are folders (rank<i>.pth): mmengine's hook, not the atomic file rename
default_hooks = dict(checkpoint=dict(_delete_=True, type='CheckpointHook', interval=5,
                                     max_keep_ckpts=2, save_best='auto'))

_base_ = ['./mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py', './_base_/deepspeed_zero2_bf16.py']
# MixMAE-large pretraining as its DDP config, with DeepSpeed ZeRO stage 2 (FlexibleRunner +
# DeepSpeedStrategy): same model, data, batch (16 GPUs x 128) and schedule.  Needs deepspeed
# and a distributed launcher:
#   bash tools/dist_train.sh configs/mixmae/mixmae_swin-large-w14_16xb128-zero2-amp-coslr-300e_in1k.py 8
# What DeepSpeed changes (docs/en/pretrain.md, "Scaling up"):
# bfloat16 by deepspeed's bf16 mode instead of autocast; the parent's AdamW and parameter
# groups go to deepspeed's ZeRO optimizer through DeepSpeedOptimWrapper
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# deepspeed's bookkeeping of the batch: the parent's images per GPU
strategy = dict(train_micro_batch_size_per_gpu={{_base_.train_dataloader.batch_size}})
# checkpoints are folders of deepspeed files: mmengine's hook, not the atomic file rename
default_hooks = dict(checkpoint=dict(_delete_=True, type='CheckpointHook', interval=1,
                                     max_keep_ckpts=3))

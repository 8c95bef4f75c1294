_base_ = './mixmae_swin-toy-w4_1xb4-20it_cpu.py'
# The CPU toy MixMAE sharded with FSDP over 2 gloo processes (global batch 4 = 2 x 2), through
# mmengine's FlexibleRunner.  Launch (a distributed launcher is required):
#   bash tools/dist_train.sh configs/mixmae/mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu.py 2
# Full precision (no mixed_precision) so that it matches DDP exactly.  Checkpoints are
# sharded: iter_N.pth/ is a folder with rank0.pth, rank1.pth, resumable with the same number
# of ranks and the same wrap policy.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        auto_wrap_policy='mixmae_block_wrap_policy',  # one unit per encoder/decoder block
        use_orig_params=True,  # per-parameter groups (weight decay, layer decay) and frozen pos-embed
        sync_module_states=True),  # every rank starts from rank 0's weights (seeds differ per rank)
    activation_checkpointing=dict(check_fn='mixmae_block_checkpoint_fn'),
    state_dict_cfg='local')
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

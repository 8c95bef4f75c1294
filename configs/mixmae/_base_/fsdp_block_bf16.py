# Sharded data parallel for a DDP recipe: FSDP through mmengine's FlexibleRunner.  A config
# lists this file after its DDP parent, e.g.
#   _base_ = ['./mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py',
#             './_base_/fsdp_block_bf16.py']
# and then replaces only what sharding changes: AmpOptimWrapper -> OptimWrapper (the strategy
# does the mixed precision) and the checkpoint hook (shards are a folder; the atomic rename of
# AtomicCheckpointHook is per file).  See docs/en/pretrain.md, "Scaling up".
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        sharding_strategy='FULL_SHARD',  # parameters, gradients and AdamW state split over ranks
        # one FSDP unit per encoder MixMAEBlock and decoder TransformerBlock
        # (mmmixmae/engine/sharding.py); embeddings, merging, norms and heads form the root unit
        auto_wrap_policy='mixmae_block_wrap_policy',
        use_orig_params=True,  # per-parameter groups: weight decay and layer-wise lr decay
        sync_module_states=True,  # every rank starts from rank 0's weights
        # weights gathered and used in bfloat16, gradients reduced and AdamW kept in float32
        # (replaces the DDP recipe's bfloat16 autocast); every block casts its inputs to
        # bfloat16 (the mixing step hands float32 tokens to the blocks, and LayerNorm refuses
        # float32 input with bfloat16 weights)
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32', cast_forward_inputs=True)),
    # recompute each block in the backward pass instead of keeping its activations
    activation_checkpointing=dict(check_fn='mixmae_block_checkpoint_fn'),
    # iter/epoch_N.pth/ is a folder of rank<i>.pth shards; resume with the same number of
    # ranks, or make one file: tools/model_converters/fsdp_sharded_to_full.py
    state_dict_cfg='local')

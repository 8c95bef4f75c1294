# DeepSpeed ZeRO stage 2 for a DDP recipe, through mmengine's FlexibleRunner +
# DeepSpeedStrategy.  A config lists this file after its DDP parent, e.g.
#   _base_ = ['./mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py',
#             './_base_/deepspeed_zero2_bf16.py']
# and then sets what depends on the parent: the optimizer wrapper (DeepSpeedOptimWrapper with
# the parent's optimizer and parameter groups), train_micro_batch_size_per_gpu (= the parent's
# train_dataloader.batch_size) and the checkpoint hook (a checkpoint is a folder).  Needs
# `pip install deepspeed` (tools/install/setup_env.sh installs it); the fixes mmengine 0.10.7
# needs with deepspeed 0.19 are in mmmixmae/compat/deepspeed_strategy.py.  See
# docs/en/pretrain.md, "Scaling up".
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    # gradients and AdamW state split over ranks, weights whole on every rank
    zero_optimization=dict(stage=2, overlap_comm=True, contiguous_gradients=True),
    # weights and activations in bfloat16, float32 master weights and AdamW state in the ZeRO
    # optimizer, gradients reduced in float32 (replaces the DDP recipe's bfloat16 autocast)
    bf16=dict(enabled=True),
    config=dict(communication_data_type='fp32'),  # keys DeepSpeedStrategy has no argument for
    # the images enter the bfloat16 model in bfloat16
    inputs_to_half=['inputs'],
    # deepspeed 0.19 clips the gradient norm to 1.0 unless told otherwise; the recipes do not clip
    gradient_clipping=0.0,
    gradient_accumulation_steps=1)

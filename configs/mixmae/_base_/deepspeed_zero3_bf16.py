# DeepSpeed ZeRO stage 3 for a DDP recipe, through mmengine's FlexibleRunner +
# DeepSpeedStrategy: as _base_/deepspeed_zero2_bf16.py (read that first), and the weights are
# split over ranks too (like FSDP's FULL_SHARD), each layer's gathered for its forward and
# backward.
_base_ = './deepspeed_zero2_bf16.py'
strategy = dict(
    zero_optimization=dict(
        stage=3,
        # checkpoints keep every rank's partition (a folder); one full file is made offline
        # with tools/model_converters/deepspeed_to_full.py, so the weights are not gathered
        # on rank 0 at every save
        stage3_gather_16bit_weights_on_model_save=False))

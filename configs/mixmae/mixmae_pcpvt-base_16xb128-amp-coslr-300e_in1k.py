_base_ = './_base_/mixmae_pretrain_in1k.py'
# MixMAE on mmpretrain's Twins-PCPVT-B through MixMAEAdapter (docs/en/backbones.md): the
# position-encoding convolutions become mixed convolutions and the sub-sampled attention keys
# (sr 8/4/2/1 at strides 4/8/16/32: one 32-pixel cell per key) only reach same-image queries.
# Not measured on a GPU.
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter',
                  backbone=dict(type='mmpretrain.PCPVT', arch='base', drop_path_rate=0.0,
                                out_indices=(3, ), norm_after_stage=[False, False, False, True])),
    # decoder input = the adapter's num_features[-1]
    neck=dict(in_channels=512))
# schedule: the base's 300 epochs (40 warm-up, cosine to 0 per iteration), unchanged

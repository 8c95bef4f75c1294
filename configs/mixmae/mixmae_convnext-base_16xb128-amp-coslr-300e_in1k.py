_base_ = './_base_/mixmae_pretrain_in1k.py'
# MixMAE on mmpretrain's ConvNeXt-B through MixMAEAdapter (docs/en/backbones.md): every 7x7
# depthwise convolution becomes a mixed convolution (paper Fig. 5); stem and downsampling
# (kernel = stride 4 / 2) stay inside the 32-pixel mixing cells.  ConvNeXt V2 (use_grn=True)
# is refused: GRN pools over all positions.  Not measured on a GPU.
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter',
                  backbone=dict(type='mmpretrain.ConvNeXt', arch='base', drop_path_rate=0.0,
                                out_indices=(3, ), gap_before_final_norm=False)),
    # decoder input = the adapter's num_features[-1]
    neck=dict(in_channels=1024))
# schedule: the base's 300 epochs (40 warm-up, cosine to 0 per iteration), unchanged

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
max_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=300 - 40, eta_min=0.0, by_epoch=True, begin=40,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=300)

_base_ = './_base_/mixmae_pretrain_in1k.py'
# MixMAE on mmpretrain's own SwinTransformer-B (standard W7 with shifted windows), built from the
# registry and wrapped by MixMAEAdapter (docs/en/backbones.md): same-image attention combined
# with the shift pattern.  Its checkpoint loads into mmpretrain/mmdet/mmseg SwinTransformer
# configs unchanged (strip the "backbone." prefix, as for any backbone).
# Not the paper's Swin/W14 (that is MixMAESwin, mixmae_swin-base-w14_*); not measured on a GPU.
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter',
                  backbone=dict(type='mmpretrain.SwinTransformer', arch='base', img_size=224, window_size=7,
                                drop_path_rate=0.0, out_indices=(3, ))),
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

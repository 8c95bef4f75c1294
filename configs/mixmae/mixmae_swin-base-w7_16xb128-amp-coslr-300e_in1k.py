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
# schedule: the base's 300 epochs (40 warm-up, cosine to 0 per iteration), unchanged

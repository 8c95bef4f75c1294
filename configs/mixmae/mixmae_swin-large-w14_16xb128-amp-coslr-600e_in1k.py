_base_ = './_base_/mixmae_pretrain_in1k.py'
# MixMAE-large (Swin/W14, windows 14,14,14,7 at 224 px), 600 epochs, 16 GPUs x 128.
model = dict(backbone=dict(arch='large'), neck=dict(in_channels=1536))
max_epochs = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=600 - 40, eta_min=0.0, by_epoch=True, begin=40,
         end=600, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=600)

_base_ = './_base_/mixmae_pretrain_in1k.py'
# MixMAE-base (Swin/W14, windows 14,14,14,7 at 224 px), 300 epochs, 16 GPUs x 128.
model = dict(backbone=dict(arch='base'), neck=dict(in_channels=1024))
max_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=300 - 40, eta_min=0.0, by_epoch=True, begin=40,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=300)

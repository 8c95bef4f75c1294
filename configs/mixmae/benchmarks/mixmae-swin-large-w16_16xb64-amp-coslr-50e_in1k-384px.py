# Swin-L/W16 at 384 px (windows 16, 16, 24, 12), fine-tuned from the 224-px W14 pretraining
# checkpoint with the large recipe (see README.md), total batch 1024 as 16 x 64.
_base_ = './mixmae-swin-base-w16_16xb64-amp-coslr-100e_in1k-384px.py'
model = dict(backbone=dict(arch='large', drop_path_rate=0.1), head=dict(in_channels=1536))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 50
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min_ratio=1e-6 / (5e-4 * 1024 / 256),
         by_epoch=True, begin=5, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)

# Swin-L/W14 fine-tuned at 224 px for 50 epochs.  The official repository has scripts for
# base only; see README.md for where each large value comes from (epochs 50, layer decay
# 0.75 and drop path 0.1 are main_finetune.py's defaults; lr 5e-4 x batch / 256 and the rest
# as for base).
_base_ = './_base_/mixmae-swin_finetune_in1k.py'
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

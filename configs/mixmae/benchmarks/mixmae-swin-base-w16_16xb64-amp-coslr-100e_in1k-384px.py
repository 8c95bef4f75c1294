# Swin-B/W16 at 384 px (windows 16, 16, 24, 12 on grids 96/48/24/12), fine-tuned from the
# 224-px W14 pretraining checkpoint (position and relative-bias tables are interpolated
# bicubically at load time).  Recipe of the 224-px config; total batch 1024 as 16 x 64.
_base_ = './_base_/mixmae-swin_finetune_in1k.py'
img_size = 384
model = dict(backbone=dict(img_size=img_size, window_size=(16, 16, 24, 12)))
train_pipeline = [
    dict(type='LoadImageRobust', on_error='raise'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=[103.53, 116.28, 123.675],
         fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
# official util/datasets.py: crop ratio 1.0 above 224 px: resize the short side to 384,
# center crop 384
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

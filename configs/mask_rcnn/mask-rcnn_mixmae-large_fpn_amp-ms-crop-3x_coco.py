# Mask R-CNN + FPN, MixMAE Swin-L/W14, COCO 2017, 3x multi-scale + crop schedule, AMP.
_base_ = './mask-rcnn_mixmae-base_fpn_amp-ms-crop-3x_coco.py'
# Optimizer and layer decay are inherited from the 1x config (0.9 per block, not an official
# recipe: see its comment and docs/en/pretrain.md).

pretrained = 'work_dirs/mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768, 1536]))

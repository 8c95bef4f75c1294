# Mask R-CNN + FPN with a MixMAE-pretrained Swin-L/W14 backbone, COCO 2017, 1x schedule, AMP.
_base_ = './mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'

pretrained = 'work_dirs/mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768, 1536]))

# Mask R-CNN + FPN with a MixMAE-pretrained Swin-L/W14 backbone, COCO 2017, 1x schedule, AMP.
_base_ = './mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'
# Layer decay is inherited (0.9 per block, not an official recipe: see the base config's
# comment and docs/en/pretrain.md).  Swin-L also has 24 blocks (2-2-18-2), so the stem again
# trains at 0.9 ** 25 = 7 % of the base lr (ImageNet fine-tuning of Swin-L uses 0.75).

pretrained = 'work_dirs/mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768, 1536]))

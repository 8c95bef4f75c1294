# UperNet + auxiliary FCN head with a MixMAE-pretrained Swin-L/W14 backbone, ADE20K 512x512,
# 160k iterations, AMP.
_base_ = './upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py'
# Layer decay is inherited (0.9 per block, not an official recipe: see the base config's
# comment and docs/en/pretrain.md).  Swin-L also has 24 blocks (2-2-18-2), so the stem again
# trains at 0.9 ** 25 = 7 % of the base lr (ImageNet fine-tuning of Swin-L uses 0.75).

pretrained = 'work_dirs/mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))

# UperNet + auxiliary FCN head with a MixMAE-pretrained Swin-L/W14 backbone, ADE20K 512x512,
# 160k iterations, AMP.
_base_ = './upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py'

pretrained = 'work_dirs/mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))

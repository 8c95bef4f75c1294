# UperNet on the 3 ADE20K scenes of ../shared/data/ade3 with mmpretrain's plain ConvNeXt
# (the demo size of configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py), initialised
# from a MixMAEAdapter pretraining checkpoint with no conversion: the adapter keeps ConvNeXt's
# state-dict keys, so init_cfg=Pretrained with prefix='backbone.' is all it takes.  The dense
# outputs' norm0..norm2 are not in the checkpoint (pretraining only has norm3) and start fresh.
#   python tools/train.py configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py
#   python tools/train.py configs/upernet/upernet_mixmae-convnext-demo_1xb2-cpu_ade3-256x256.py
_base_ = './upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py'

pretrained = 'work_dirs/demo_convnext_adapter/iter_600.pth'
channels = [32, 64, 128, 256]
model = dict(
    backbone=dict(
        _delete_=True, type='mmpretrain.ConvNeXt',
        arch=dict(depths=[1, 1, 2, 1], channels=channels), drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=channels),
    auxiliary_head=dict(in_channels=channels[2]))
# ConvNeXt's own layer ids (get_layer_depth) drive the layer-decay constructor

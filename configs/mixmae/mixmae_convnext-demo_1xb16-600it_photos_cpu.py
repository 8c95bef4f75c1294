_base_ = './mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py'
# CPU demo of MixMAE on mmpretrain's ConvNeXt through MixMAEAdapter (mixed depthwise
# convolutions), on the photos bundled with scikit-image/scikit-learn; same recipe and decoder
# as mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py.
# Everything but the encoder comes from the Swin/W8 demo (photos, 128 px crops, decoder,
# AdamW schedule, 600 iterations); its decoder width (256) is this encoder's too.
img_size = 128
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter', img_size=img_size, backbone=dict(type='mmpretrain.ConvNeXt',
                  arch=dict(depths=[1, 1, 2, 1], channels=[32, 64, 128, 256]),
                  drop_path_rate=0.0, out_indices=(3, ), gap_before_final_norm=False)))
work_dir = './work_dirs/demo_convnext_adapter'

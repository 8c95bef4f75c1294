_base_ = './mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py'
# CPU demo of MixMAE on mmpretrain's SwinTransformer (shifted windows) through MixMAEAdapter,
# on the photos bundled with scikit-image/scikit-learn; same recipe and decoder as
# mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py.  Window 4 at 128 px (grids 32/16/8/4) plays
# the role of W7 at 224: shifted windows in every second block of stages 0-2.
# Everything but the encoder comes from the Swin/W8 demo (photos, 128 px crops, decoder,
# AdamW schedule, 600 iterations); its decoder width (256) is this encoder's too.
img_size = 128
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter', img_size=img_size, backbone=dict(type='mmpretrain.SwinTransformer',
                  arch=dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
                  img_size=img_size, window_size=4, drop_path_rate=0.0, out_indices=(3, ))))
work_dir = './work_dirs/demo_swin_adapter'

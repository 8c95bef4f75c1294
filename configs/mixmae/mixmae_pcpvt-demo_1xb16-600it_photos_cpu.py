_base_ = './mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py'
# CPU demo of MixMAE on mmpretrain's Twins-PCPVT through MixMAEAdapter (mixed position-encoding
# convolutions, same-image sub-sampled attention), on the photos bundled with
# scikit-image/scikit-learn; same recipe and decoder as mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py.
# Everything but the encoder comes from the Swin/W8 demo (photos, 128 px crops, decoder,
# AdamW schedule, 600 iterations); its decoder width (256) is this encoder's too.
img_size = 128
model = dict(
    backbone=dict(_delete_=True, type='MixMAEAdapter', img_size=img_size, backbone=dict(type='mmpretrain.PCPVT',
                  arch=dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1],
                            num_heads=[1, 2, 4, 8], patch_sizes=[4, 2, 2, 2],
                            strides=[4, 2, 2, 2], mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1]),
                  drop_path_rate=0.0, out_indices=(3, ),
                  norm_after_stage=[False, False, False, True])))
work_dir = './work_dirs/demo_pcpvt_adapter'

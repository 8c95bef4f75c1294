_base_ = './mixmae_pcpvt-demo_1xb16-600it_photos_cpu.py'
# CPU demo of MixMAE on mmpretrain's Twins-SVT through MixMAEAdapter (mixed position-encoding
# convolutions, same-image locally-grouped and sub-sampled attention), on the photos bundled
# with scikit-image/scikit-learn.  The PCPVT demo's widths, heads, strides and sr 8/4/2/1 (one
# 32-pixel cell per pooled key); SVT alternates a locally-grouped (LSA) block and a global
# sub-sampled (GSA) block, so two blocks a stage.  Window 4 at 128 px (grids 32/16/8/4) plays
# the role of SVT's window 7 at 224, as in the Swin adapter demo.  Photos, crops, decoder,
# AdamW schedule and 600 iterations: the Swin/W8 demo's, through the PCPVT demo.
model = dict(backbone=dict(backbone=dict(
    type='mmpretrain.SVT', arch=dict(depths=[2, 2, 2, 2], window_sizes=[4, 4, 4, 4]))))
work_dir = './work_dirs/demo_svt_adapter'

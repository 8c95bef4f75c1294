# UperNet + auxiliary FCN head with a MixMAE-pretrained Swin-B/W14 backbone, ADE20K 512x512,
# 160k iterations, AMP.  Recipe and its sources: configs/upernet/README.md.  8 GPUs x 2 images.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['mmmixmae.seg'], allow_failed_imports=False)

# A MixMAE checkpoint: the pretraining run's own checkpoint (keys 'backbone.*'; the decoder is
# ignored) or a fine-tuned mmpretrain classifier.  See docs/en/transfer.md.
pretrained = 'work_dirs/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='MixMAESwin',
        arch='base',
        img_size=224,  # the pretraining grid: windows (14, 14, 14, 7) as pretrained
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        shift_window=True,  # cross-window links at 512 px; no new weights
        global_attn_indexes=(),
        with_cp=False,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # UPerHead and FCNHead keep mmseg's SyncBN (norm_cfg of upernet_swin.py)
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150),
    test_cfg=dict(mode='whole'))

# AdamW with layer-wise lr decay over the 24 Swin blocks; decode heads at the base lr.
# Recipe difference (docs/en/pretrain.md, "Where this recipe differs from the official code"):
# the official MixMAE code releases no segmentation recipe.  Ours applies the official
# fine-tuning rule (util/lr_decay.py, layer ids from MixMAESwin.get_layer_depth: layer id k,
# 0 = stem and 1-24 = blocks, gets 0.9 ** (24 + 1 - k) of the base lr) to the backbone only,
# with rate 0.9 per block instead of the 0.7 of ImageNet fine-tuning: the stem trains at
# 0.9 ** 25 = 7 % of the base lr, the last block at 90 %; the UPerHead and FCN heads are
# new and get the full lr.  Reasons for 0.9: configs/upernet/README.md.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# reliability (docs/en/reliability.md): resume at the next unseen batch (indices skipped, no
# data replay), crash-safe checkpoints every 8k of the 160k iterations (mmseg's default is 16k),
# per-rank RNG state, rank-mean loss in the log, stop on a NaN/Inf loss or a collapsed AMP scale
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=160000, val_interval=16000)
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=8000, max_keep_ckpts=3,
                    save_best='mIoU'))
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Mask R-CNN + FPN with a MixMAE-pretrained Swin-B/W14 backbone, COCO 2017, 1x schedule, AMP.
# Recipe and its sources: configs/mask_rcnn/README.md.  8 GPUs x 2 images.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmmixmae.det'], allow_failed_imports=False)

# A MixMAE checkpoint: the pretraining run's own checkpoint (keys 'backbone.*', the decoder
# 'neck.*'/'head.*' is ignored), or a fine-tuned mmpretrain classifier.  See docs/en/transfer.md.
pretrained = 'work_dirs/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAESwin',
        arch='base',
        img_size=224,  # the pretraining grid: windows (14, 14, 14, 7) as pretrained
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        shift_window=True,  # cross-window links at detection resolution; no new weights
        global_attn_indexes=(),
        with_cp=False,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]))

# category checks on top of mmdet's CocoDataset (mmmixmae.det.StrictCocoDataset)
train_dataloader = dict(dataset=dict(type='StrictCocoDataset'))
val_dataloader = dict(dataset=dict(type='StrictCocoDataset'))
test_dataloader = val_dataloader

max_epochs = 12
# reliability (docs/en/reliability.md): resume mid-epoch at the next unseen batch, crash-safe
# checkpoints every epoch (about 7.3k iterations at 16 images per step), per-rank RNG state in
# the checkpoints, rank-mean loss in the log, stop on a NaN/Inf loss or a collapsed AMP scale
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='RankMeanLogVarsHook'),
    dict(type='NonFiniteLossHook'),
]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]

# AdamW with layer-wise lr decay over the 24 Swin blocks; neck and heads at the base lr.
# Recipe difference (docs/en/pretrain.md, "Where this recipe differs from the official code"):
# the official MixMAE code releases no detection recipe.  Ours applies the official
# fine-tuning rule (util/lr_decay.py, layer ids from MixMAESwin.get_layer_depth: layer id k,
# 0 = stem and 1-24 = blocks, gets 0.9 ** (24 + 1 - k) of the base lr) to the backbone only,
# with rate 0.9 per block instead of the 0.7 of ImageNet fine-tuning: the stem trains at
# 0.9 ** 25 = 7 % of the base lr, the last block at 90 %; FPN, RPN and RoI heads are new
# and get the full lr.  Reasons for 0.9: configs/mask_rcnn/README.md.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))

auto_scale_lr = dict(enable=False, base_batch_size=16)

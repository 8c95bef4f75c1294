"""Helpers of the dense end-to-end tests (tests/test_det and tests/test_seg).

* :func:`pretrained_toy_checkpoint` pretrains the tiny MixMAE of the demo configs on the real
  sample photos through mmpretrain's Runner, once per test session, and returns the mmengine
  checkpoint (keys ``backbone.*``, ``neck.*``) the dense configs load with
  ``init_cfg=dict(type='Pretrained', prefix='backbone.')``;
* :class:`Recorder` collects training losses and validation metrics from a Runner, and runs
  one validation *before* training (the untrained-heads baseline on the same images).
"""
import contextlib
import os
import os.path as osp
import time
from typing import Dict, List

from mmengine.hooks import Hook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MASK_RCNN_TOY = osp.join(REPO, 'configs', 'mask_rcnn',
                         'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py')
PRETRAIN_ITERS = 40


def toy_backbone_cfg() -> dict:
    """The backbone of the demo configs (one source of truth for the pretraining)."""
    from mmengine.config import Config
    cfg = Config.fromfile(MASK_RCNN_TOY)
    return cfg.model.backbone.to_dict()


def pretrain_cfg(work_dir: str, data_root: str, iters: int = PRETRAIN_ITERS):
    """A MixMAE pretraining config for the demo backbone on the 6 sample photos."""
    from mmengine.config import Config
    bb = toy_backbone_cfg()
    embed, stages = bb['arch']['embed_dims'], len(bb['arch']['depths'])
    img = bb['img_size']
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=img, crop_ratio_range=(0.3, 1.0), backend='pillow',
             interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs'),
    ]

    def folder(sub):
        return dict(type='CustomDataset', data_root=osp.join(data_root, sub), data_prefix='',
                    with_label=False, pipeline=pipeline)

    return Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmmixmae'], allow_failed_imports=False),
        work_dir=work_dir,
        model=dict(
            type='MixMAE', mask_ratio=0.5,
            data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], to_rgb=True),
            backbone=dict(type='MixMAESwin', arch=bb['arch'], img_size=img,
                          window_size=bb['window_size']),
            neck=dict(type='MixMAEDecoder', in_channels=embed * 2**(stages - 1), embed_dims=32,
                      depth=1, num_heads=2, img_size=img),
            head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True)),
        train_dataloader=dict(
            batch_size=8, num_workers=0, persistent_workers=False,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='ConcatDataset', datasets=[folder('coco_voc3/JPEGImages'),
                                                         folder('ade3/images/validation')])),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95),
                                          weight_decay=0.05),
                           paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                                              flat_decay_mult=0.)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
                              end=5)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=20),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING',
    ))


@contextlib.contextmanager
def restore_default_scope():
    """Forget the ``DefaultScope`` instances created inside the block.

    ``Runner`` creates a ``DefaultScope`` (its ``default_scope``) that stays the process-wide
    current scope after training; a later ``MODELS.build`` from another library's registry
    would then look in the wrong registry.
    """
    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    try:
        yield
    finally:
        for name in [n for n in DefaultScope._instance_dict if n not in before]:
            DefaultScope._instance_dict.pop(name)


def pretrained_toy_checkpoint(base_dir: str, data_root: str) -> Dict:
    """Pretrain once per session (cached under ``base_dir``); returns path and losses."""
    import torch
    from mmengine.runner import Runner
    work_dir = osp.join(base_dir, 'mixmae_toy_pretrain')
    ckpt = osp.join(work_dir, f'iter_{PRETRAIN_ITERS}.pth')
    record = osp.join(work_dir, 'losses.pt')
    if not osp.exists(ckpt):
        os.makedirs(work_dir, exist_ok=True)
        with restore_default_scope():
            runner = Runner.from_cfg(pretrain_cfg(work_dir, data_root))
            rec = Recorder(val_before_train=False)
            runner.register_hook(rec, priority='LOWEST')
            start = time.time()
            runner.train()
        torch.save(dict(losses=rec.losses, seconds=time.time() - start), record)
    info = torch.load(record)
    return dict(checkpoint=ckpt, **info)


class Recorder(Hook):
    """Training losses per iteration and every validation's metrics (the first one before
    training when ``val_before_train``)."""

    priority = 'LOWEST'

    def __init__(self, val_before_train: bool = True):
        self.val_before_train = val_before_train
        self.losses: List[float] = []
        self.metrics: List[dict] = []
        self.train_seconds = 0.

    def before_train(self, runner) -> None:
        if self.val_before_train:
            runner.val_loop.run()  # fills self.metrics[0] through after_val_epoch
        self._start = time.time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(float(outputs['loss']))

    def after_train(self, runner) -> None:
        self.train_seconds = time.time() - self._start

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)

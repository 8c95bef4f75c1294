"""Mask R-CNN with a MixMAE backbone through mmdet's Runner, on real images.

The demo configs (configs/mask_rcnn/*toy*) are the real base 1x config with a tiny backbone:
same registration (``custom_imports=['mmmixmae.det']``, ``type='MixMAESwin'`` in the mmdet
scope), ``init_cfg=Pretrained`` from a MixMAE pretraining checkpoint, the layer-decay
optimizer constructor, ``StrictCocoDataset`` and ``CocoMetric`` (bbox + segm).
"""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers.dense import REPO, Recorder, mean

DET = osp.join(REPO, 'configs', 'mask_rcnn')
TOY_VOC = osp.join(DET, 'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py')
TOY_ADE = osp.join(DET, 'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_ade3.py')
REAL = ['mask-rcnn_mixmae-base_fpn_amp-1x_coco.py',
        'mask-rcnn_mixmae-base_fpn_amp-ms-crop-3x_coco.py',
        'mask-rcnn_mixmae-large_fpn_amp-1x_coco.py',
        'mask-rcnn_mixmae-large_fpn_amp-ms-crop-3x_coco.py']


def point_at_data(cfg, shared_data):
    """Point the config's data folder (``$MMMIXMAE_DATA/<name>``) at the test data folder."""
    old = cfg.data_root
    new = osp.join(shared_data, osp.basename(osp.normpath(old))) + '/'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = new
    for ev in (cfg.val_evaluator, cfg.test_evaluator):
        ev.ann_file = new + cfg.ann_file
    return new


def run_toy(path, shared_data, work_dir, checkpoint, iters=None):
    from mmengine.runner import Runner
    cfg = Config.fromfile(path)
    point_at_data(cfg, shared_data)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    cfg.default_hooks.logger.interval = 20
    cfg.log_level = 'WARNING'
    if iters:
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
        cfg.param_scheduler[1].end = iters
        cfg.param_scheduler[1].milestones = [int(iters * 0.75)]
    runner = Runner.from_cfg(cfg)
    rec = Recorder()
    runner.register_hook(rec)
    runner.train()
    return runner, rec


def check_learning(runner, rec, checkpoint, min_map, min_segm):
    # the backbone was initialised from the MixMAE checkpoint by mmdet's Runner
    state = torch.load(checkpoint, map_location='cpu')['state_dict']
    assert not torch.equal(state['backbone.layers.0.blocks.0.attn.qkv.weight'],
                           runner.model.backbone.layers[0].blocks[0].attn.qkv.weight.detach())
    # layer-wise decay groups (stem smallest, heads at the base lr)
    groups = runner.optim_wrapper.optimizer.param_groups
    scales = {g['layer_id']: g['lr_scale'] for g in groups}
    depth = sum(runner.model.backbone.depths)
    assert scales[-1] == 1.0
    assert scales[0] == pytest.approx(0.9**(depth + 1))
    # CocoMetric returns {} when the model detects nothing at all (untrained heads on 150
    # classes score below test_cfg.rcnn.score_thr): that is an mAP of 0
    before = {k: rec.metrics[0].get(k, 0.0) for k in ('coco/bbox_mAP', 'coco/segm_mAP')}
    after = rec.metrics[-1]
    assert len(rec.metrics) == 2  # before training and at the end
    first, last = mean(rec.losses[:5]), mean(rec.losses[-5:])
    print(f'loss {first:.3f} -> {last:.3f}; bbox mAP {before["coco/bbox_mAP"]} -> '
          f'{after["coco/bbox_mAP"]}, segm mAP {before["coco/segm_mAP"]} -> '
          f'{after["coco/segm_mAP"]}; {len(rec.losses)} iterations in '
          f'{rec.train_seconds:.0f} s')
    assert last < 0.5 * first
    assert after['coco/bbox_mAP'] >= min_map
    assert after['coco/bbox_mAP'] >= before['coco/bbox_mAP'] + min_map / 2
    assert after['coco/segm_mAP'] >= min_segm
    assert after['coco/segm_mAP'] >= before['coco/segm_mAP'] + min_segm / 2


@pytest.mark.slow
def test_mask_rcnn_overfits_coco_voc3(shared_data, mixmae_toy_pretrained, tmp_path):
    runner, rec = run_toy(TOY_VOC, shared_data, tmp_path, mixmae_toy_pretrained['checkpoint'])
    check_learning(runner, rec, mixmae_toy_pretrained['checkpoint'], min_map=0.4, min_segm=0.25)


@pytest.mark.slow
def test_mask_rcnn_overfits_ade3_instances(shared_data, mixmae_toy_pretrained, tmp_path):
    runner, rec = run_toy(TOY_ADE, shared_data, tmp_path, mixmae_toy_pretrained['checkpoint'])
    check_learning(runner, rec, mixmae_toy_pretrained['checkpoint'], min_map=0.2, min_segm=0.08)


def test_pretrained_file_of_another_arch_is_refused_by_the_detector(mixmae_toy_pretrained):
    """init_weights of an mmdet detector whose backbone does not fit the checkpoint stops
    with the mismatching keys listed, and copies nothing."""
    import mmmixmae.det  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    from mmmixmae.checkpoint import CheckpointMismatchError
    cfg = Config.fromfile(TOY_VOC)
    cfg.model.backbone.init_cfg.checkpoint = mixmae_toy_pretrained['checkpoint']
    cfg.model.backbone.arch = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
    cfg.model.neck.in_channels = [32, 64, 128, 256]
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    before = model.backbone.patch_embed.proj.weight.detach().clone()
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)does not fit.*shape mismatches.*patch_embed\.proj\.weight: '
                             r'\(16, 3, 4, 4\) vs \(32, 3, 4, 4\)'):
        model.init_weights()
    assert torch.equal(before, model.backbone.patch_embed.proj.weight)


def test_pretraining_fixture_learned(mixmae_toy_pretrained):
    losses = mixmae_toy_pretrained['losses']
    assert mean(losses[-5:]) < mean(losses[:5]) - 0.03


# ----------------------------------------------------------------------------- datasets
def _voc_dataset(shared_data, ann_file, classes):
    import mmmixmae.det  # noqa: F401
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(dict(type='StrictCocoDataset',
                                   data_root=osp.join(shared_data, 'coco_voc3'),
                                   ann_file=ann_file, data_prefix=dict(img=''),
                                   metainfo=dict(classes=classes), pipeline=[]))


def test_strict_coco_dataset_reads_voc3_without_background(shared_data):
    cfg = Config.fromfile(TOY_VOC)
    ds = _voc_dataset(shared_data, 'annotations.json', cfg.classes)
    assert len(ds) == 3 and len(cfg.classes) == 20 and '_background_' not in cfg.classes
    labels = sorted(i['bbox_label'] for d in ds for i in d['instances'])
    raw = json.load(open(osp.join(shared_data, 'coco_voc3', 'annotations.json')))
    assert labels == sorted(a['category_id'] - 1 for a in raw['annotations'])  # id k -> k-1
    assert len(labels) == 12 and cfg.model.roi_head.bbox_head.num_classes == 20


def test_strict_coco_dataset_refuses_categories_outside_the_classes(shared_data, tmp_path):
    cfg = Config.fromfile(TOY_VOC)
    raw = json.load(open(osp.join(shared_data, 'coco_voc3', 'annotations.json')))
    for cat_id, what in ((0, r"\('_background_'\)"), (57, r'\(not a category of the file\)')):
        bad = copy.deepcopy(raw)
        bad['annotations'][4]['category_id'] = cat_id
        path = tmp_path / f'bad_{cat_id}.json'
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=rf'bad_{cat_id}.json: annotation 4 of image 1 '
                           rf'\(JPEGImages/2011_000025.jpg\) has category id {cat_id} {what}'):
            _voc_dataset(shared_data, str(path), cfg.classes)
    # mmdet's own CocoDataset silently drops that annotation (11 of the 12 objects remain)
    from mmdet.datasets import CocoDataset
    plain = CocoDataset(data_root=osp.join(shared_data, 'coco_voc3'), ann_file=str(path),
                        data_prefix=dict(img=''), metainfo=dict(classes=cfg.classes), pipeline=[])
    assert sum(len(d['instances']) for d in plain) == 11


def test_strict_coco_dataset_refuses_missing_or_reordered_classes(shared_data):
    cfg = Config.fromfile(TOY_VOC)
    with pytest.raises(ValueError, match=r"configured classes \['tvmonitor'\] are not among"):
        _voc_dataset(shared_data, 'annotations.json', cfg.classes[:-1] + ('tvmonitor', ))
    swapped = (cfg.classes[1], cfg.classes[0]) + cfg.classes[2:]
    with pytest.raises(ValueError, match='not in the order of the file'):
        _voc_dataset(shared_data, 'annotations.json', swapped)


def test_ade3_instance_classes_match_the_annotation_file(shared_data):
    cfg = Config.fromfile(TOY_ADE)
    raw = json.load(open(osp.join(shared_data, 'ade3', 'instances_ade3.json')))
    assert list(cfg.classes) == [c['name'] for c in raw['categories']]
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes \
        == 150


# ----------------------------------------------------------------------------- reachability
@pytest.mark.slow  # a fresh interpreter
def test_import_mmmixmae_does_not_import_mmdet_or_mmseg():
    """Pretraining works where mmdet and mmseg are absent (mmcv-lite machines).

    mmpretrain itself imports mmdet opportunistically when it is installed, so the check makes
    both unimportable (as on a machine without them) and then imports and runs our package.
    """
    code = ('import sys; sys.modules.update(mmdet=None, mmseg=None); '
            'import torch, mmmixmae, mmmixmae.engine; '
            'from mmpretrain.registry import MODELS; '
            "m = MODELS.build(dict(type='MixMAE', backbone=dict(type='MixMAESwin', "
            "arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]), img_size=64, "
            "window_size=(4, 4, 2, 2)), neck=dict(type='MixMAEDecoder', in_channels=128, "
            "embed_dims=32, depth=1, num_heads=2, img_size=64), "
            "head=dict(type='MixMAEPretrainHead'))); "
            "loss = m.loss(torch.randn(2, 3, 64, 64))['loss']; assert loss.isfinite(); "
            "bad = sorted(k for k, v in sys.modules.items() if v is not None "
            "and k.split('.')[0] in ('mmdet', 'mmseg')); assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO,
                   env=dict(PYTHONPATH=REPO, OMP_NUM_THREADS='1', PATH='/usr/bin:/bin'))


def test_backbone_is_reachable_in_mmdet_scope_both_ways():
    """Chosen: registration in mmdet's MODELS (``type='MixMAESwin'``).  The cross-scope name
    ``mmpretrain.MixMAESwin`` reaches the same class."""
    import mmmixmae.det  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    from mmmixmae.models import MixMAESwin
    tiny = dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
                img_size=64, window_size=(4, 4, 2, 2), out_indices=(0, 1, 2, 3),
                out_type='featmap')
    with DefaultScope.overwrite_default_scope('mmdet'):
        a = MODELS.build(dict(type='MixMAESwin', **tiny))
        b = MODELS.build(dict(type='mmpretrain.MixMAESwin', **tiny))
    assert type(a) is type(b) is MixMAESwin
    assert MODELS.get('MixMAESwin') is MixMAESwin


@pytest.mark.parametrize('name', REAL)
def test_real_configs(name):
    cfg = Config.fromfile(osp.join(DET, name))
    bb = cfg.model.backbone
    assert cfg.custom_imports.imports == ['mmmixmae.det']
    assert bb.type == 'MixMAESwin' and bb.out_type == 'featmap'
    assert bb.out_indices == (0, 1, 2, 3) and bb.window_size == (14, 14, 14, 7)
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.prefix == 'backbone.'
    from mmmixmae.models import MixMAESwin
    embed = MixMAESwin.arch_zoo[bb.arch]['embed_dims']
    assert cfg.model.neck.in_channels == [embed, 2 * embed, 4 * embed, 8 * embed]
    assert bb.drop_path_rate == (0.2 if bb.arch == 'base' else 0.3)
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'
    assert ow.constructor == 'MixMAELayerDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg == dict(layer_decay_rate=0.9)
    assert ow.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.train_dataloader.dataset.type == 'StrictCocoDataset'
    assert cfg.train_cfg.max_epochs == (36 if '3x' in name else 12)
    text = open(osp.join(DET, name)).read() + cfg.pretty_text
    assert 'SyncBN' not in text and 'gloo' not in text  # no CPU settings in real configs


def test_real_base_detector_builds_and_runs(tmp_path):
    """The base 1x detector builds in mmdet's scope and computes losses on a small batch."""
    import mmmixmae.det  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import DefaultScope
    from mmengine.structures import InstanceData
    cfg = Config.fromfile(osp.join(DET, 'mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.backbone.parameters()) > 85e6
    torch.manual_seed(0)
    sample = DetDataSample(metainfo=dict(img_shape=(96, 128), pad_shape=(96, 128),
                                         batch_input_shape=(96, 128)))
    from mmdet.structures.mask import BitmapMasks
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 10., 60., 80.]]), labels=torch.tensor([3]),
        masks=BitmapMasks(torch.zeros(1, 96, 128, dtype=torch.uint8).index_fill_(
            1, torch.arange(10, 80), 1).numpy(), 96, 128))
    model.train()
    losses = model.loss(torch.randn(1, 3, 96, 128), [sample])
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0

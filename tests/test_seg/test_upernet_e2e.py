"""UperNet with a MixMAE backbone through mmseg's Runner, on the ADE20K sample scenes.

The demo config (configs/upernet/*toy*) is the real base config with a tiny backbone: same
registration (``custom_imports=['mmmixmae.seg']``, ``type='MixMAESwin'`` in the mmseg scope),
``init_cfg=Pretrained`` from a MixMAE pretraining checkpoint, the layer-decay optimizer
constructor, ADE20KDataset (``reduce_zero_label``) and IoUMetric.
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from helpers.dense import REPO, Recorder, mean

SEG = osp.join(REPO, 'configs', 'upernet')
TOY = osp.join(SEG, 'upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py')
REAL = ['upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py',
        'upernet_mixmae-large_8xb2-amp-160k_ade20k-512x512.py']


def toy_cfg(shared_data, work_dir, checkpoint):
    cfg = Config.fromfile(TOY)
    root = osp.join(shared_data, 'ade3') + '/'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    cfg.default_hooks.logger.interval = 20
    cfg.log_level = 'WARNING'
    return cfg


def test_ade3_labels_are_reduced_like_ade20k(shared_data, tmp_path):
    """0 (other) becomes 255 (ignored) and 1..150 become 0..149, as in mmseg's ADE20K."""
    import mmmixmae.seg  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    cfg = toy_cfg(shared_data, tmp_path, 'unused')
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(ds) == 3 and len(ds.metainfo['classes']) == 150
    sample = ds[0]
    seg = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    name = osp.basename(sample['data_samples'].img_path).replace('.jpg', '.png')
    from PIL import Image
    raw = np.array(Image.open(osp.join(shared_data, 'ade3', 'annotations', 'validation', name)))
    # resized with nearest neighbour: compare the label sets
    expected = {int(v) - 1 for v in np.unique(raw) if v > 0}
    if (raw == 0).any():
        expected.add(255)
    assert set(np.unique(seg).tolist()) <= expected
    assert len(set(np.unique(seg).tolist()) & expected) >= len(expected) - 2


@pytest.mark.slow
def test_upernet_overfits_ade3(shared_data, mixmae_toy_pretrained, tmp_path):
    from mmengine.runner import Runner
    checkpoint = mixmae_toy_pretrained['checkpoint']
    runner = Runner.from_cfg(toy_cfg(shared_data, tmp_path, checkpoint))
    rec = Recorder()
    runner.register_hook(rec)
    runner.train()
    # mmseg's Runner built the backbone in its scope and loaded the MixMAE weights
    from mmmixmae.models import MixMAESwin
    assert type(runner.model.backbone) is MixMAESwin
    state = torch.load(checkpoint, map_location='cpu')['state_dict']
    assert not torch.equal(state['backbone.layers.0.blocks.0.attn.qkv.weight'],
                           runner.model.backbone.layers[0].blocks[0].attn.qkv.weight.detach())
    groups = runner.optim_wrapper.optimizer.param_groups
    scales = {g['layer_id']: g['lr_scale'] for g in groups}
    assert scales[-1] == 1.0
    assert scales[0] == pytest.approx(0.9**(sum(runner.model.backbone.depths) + 1))
    before, after = rec.metrics[0]['mIoU'], rec.metrics[-1]['mIoU']
    first, last = mean(rec.losses[:5]), mean(rec.losses[-5:])
    print(f'loss {first:.3f} -> {last:.3f}; mIoU {before} -> {after}, aAcc '
          f'{rec.metrics[0]["aAcc"]} -> {rec.metrics[-1]["aAcc"]}; {len(rec.losses)} '
          f'iterations in {rec.train_seconds:.0f} s')
    assert last < 0.5 * first
    assert len(rec.metrics) == 2  # before training and at the end
    assert after >= 20 and after >= before + 15  # mmseg reports percentages
    assert rec.metrics[-1]['aAcc'] >= 70 and rec.metrics[-1]['aAcc'] >= rec.metrics[0]['aAcc'] + 30


def test_backbone_is_reachable_in_mmseg_scope():
    import mmmixmae.seg  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmmixmae.models import MixMAESwin
    assert MODELS.get('MixMAESwin') is MixMAESwin
    with DefaultScope.overwrite_default_scope('mmseg'):
        b = MODELS.build(dict(type='mmpretrain.MixMAESwin',
                              arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                        num_heads=[1, 2, 2, 4]),
                              img_size=64, window_size=(4, 4, 2, 2)))
    assert type(b) is MixMAESwin


@pytest.mark.parametrize('name', REAL)
def test_real_configs(name):
    cfg = Config.fromfile(osp.join(SEG, name))
    bb = cfg.model.backbone
    assert cfg.custom_imports.imports == ['mmmixmae.seg']
    assert bb.type == 'MixMAESwin' and bb.out_type == 'featmap'
    assert bb.out_indices == (0, 1, 2, 3) and bb.window_size == (14, 14, 14, 7)
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.prefix == 'backbone.'
    from mmmixmae.models import MixMAESwin
    embed = MixMAESwin.arch_zoo[bb.arch]['embed_dims']
    assert cfg.model.decode_head.in_channels == [embed, 2 * embed, 4 * embed, 8 * embed]
    assert cfg.model.auxiliary_head.in_channels == 4 * embed
    assert cfg.model.auxiliary_head.in_index == 2
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    # SyncBN stays in the real configs; CPU settings only in the toy config
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert cfg.model.auxiliary_head.norm_cfg.type == 'SyncBN'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert bb.drop_path_rate == (0.2 if bb.arch == 'base' else 0.3)
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'
    assert ow.constructor == 'MixMAELayerDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg == dict(layer_decay_rate=0.9)
    assert ow.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.train_cfg.max_iters == 160000 and cfg.crop_size == (512, 512)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'


def test_toy_config_only_differs_in_cpu_and_size_settings():
    toy = Config.fromfile(TOY)
    assert toy.model.decode_head.norm_cfg.type == 'BN'
    assert toy.env_cfg.dist_cfg.backend == 'gloo'
    assert toy.optim_wrapper.constructor == 'MixMAELayerDecayOptimWrapperConstructor'
    assert toy.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.9

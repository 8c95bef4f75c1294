"""``init_cfg=dict(type='Pretrained', ...)`` of MixMAESwin: formats, prefix handling, the
report table, and strictness (every failure leaves the model untouched)."""
import argparse
import os

import pytest
import torch
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401
from mmmixmae.checkpoint import InvalidCheckpointError, UnsafeCheckpointError
from mmmixmae.models import MixMAESwin
from mmmixmae.checkpoint import pretrained as ckpt_mod
from mmmixmae.checkpoint import CheckpointMismatchError

from helpers.archs import TOY as ARCH


def pretrain_model(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(type='MixMAE',
             backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2)),
             neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=1,
                       num_heads=2, img_size=64),
             head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def backbone_with(path, prefix='backbone.', **kwargs):
    cfg = dict(arch=ARCH, img_size=64, window_size=(4, 4, 2, 2),
               init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix=prefix))
    cfg.update(kwargs)
    return MixMAESwin(**cfg)


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_unchanged(module, before):
    after = module.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.fixture
def logged(monkeypatch):
    messages = []
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def test_mmengine_checkpoint_loads_with_a_table(tmp_path, logged):
    source = pretrain_model()
    path = tmp_path / 'epoch_600.pth'
    torch.save(dict(meta=dict(epoch=600), state_dict=source.state_dict()), path)
    model = backbone_with(path, out_indices=(0, 1, 2, 3), out_type='featmap')
    model.init_weights()
    src = {k[len('backbone.'):]: v for k, v in source.state_dict().items()
           if k.startswith('backbone.')}
    for k, v in model.state_dict().items():
        if k.startswith('norm') and k[4].isdigit():
            continue
        assert torch.equal(v, src[k]), k
    # the dense norms of out_indices 0..2 are new: LayerNorm init
    assert torch.equal(model.norm0.weight, torch.ones(16))
    table = logged[-1]
    assert f'pretrained weights from {path} (mmengine checkpoint, prefix ' in table
    n_neck = sum(k.startswith('neck.') for k in source.state_dict())
    assert n_neck == 20  # embed 2, mask token, pos, block 12, norm 2, pred 2
    flat = ' '.join(table.split())
    for row in (f'| loaded | {len(src)} | all {len(src)} backbone tensors |',
                f'| dropped: other modules | {n_neck} | neck.* ({n_neck}) |',
                '| dropped: rebuilt | 0 | - |',
                '| newly initialized | 6 | norm0.weight, norm0.bias, norm1.weight, norm1.bias, '
                'norm2.weight, norm2.bias |',
                '| missing | 0 | - |'):
        assert row in flat, (row, table)


def test_official_checkpoint_without_prefix_loads(tmp_path, logged):
    source = pretrain_model(seed=1)
    official = {}
    for k, v in source.state_dict().items():
        k = k.split('.', 1)[1]  # official names are ours without backbone./neck.
        official[k] = v
    # official checkpoints also carry the (persistent) index buffers
    official['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(16, 16).long()
    path = tmp_path / 'checkpoint.pth'
    torch.save(dict(model=official, optimizer={}, epoch=599, scaler={},
                    args=argparse.Namespace(model='mixmim_base')), path)
    model = backbone_with(path)
    report = ckpt_mod.load_pretrained_backbone(model, model.init_cfg)
    assert report.format == 'official'
    assert sorted(report.dropped_other)[:3] == ['decoder_blocks.0.attn.proj.bias',
                                                'decoder_blocks.0.attn.proj.weight',
                                                'decoder_blocks.0.attn.qkv.bias']
    assert 'mask_token' in report.dropped_other and len(report.dropped_other) == 20
    assert report.dropped_rebuilt == ['layers.0.blocks.0.attn.relative_position_index']
    assert report.newly_initialized == []
    assert torch.equal(model.layers[2].blocks[1].mlp.fc2.weight,
                       source.backbone.layers[2].blocks[1].mlp.fc2.weight)


def test_image_classifier_init_weights_loads_backbone_and_inits_head(tmp_path, logged):
    source = pretrain_model(seed=2)
    path = tmp_path / 'pretrain.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    clf = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2),
                           init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                         prefix='backbone.')),
             head=dict(type='LinearClsHead', num_classes=100, in_channels=128,
                       init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5, bias=0.))))
    clf.init_weights()
    assert torch.equal(clf.backbone.patch_embed.proj.weight,
                       source.backbone.patch_embed.proj.weight)
    w = clf.head.fc.weight
    assert 1.5e-5 < w.std().item() < 2.5e-5 and w.abs().max() < 2e-4
    assert torch.equal(clf.head.fc.bias, torch.zeros(100))


def test_another_arch_fails_with_shape_list_and_loads_nothing(tmp_path):
    other = MODELS.build(
        dict(type='MixMAE',
             backbone=dict(type='MixMAESwin',
                           arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[2, 2, 4, 4]),
                           img_size=64, window_size=(4, 4, 2, 2)),
             neck=dict(type='MixMAEDecoder', in_channels=256, embed_dims=32, depth=1,
                       num_heads=2, img_size=64),
             head=dict(type='MixMAEPretrainHead', patch_size=32)))
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    model = backbone_with(path)
    before = snapshot(model)
    with pytest.raises(CheckpointMismatchError) as info:
        model.init_weights()
    msg = str(info.value)
    assert 'nothing was loaded' in msg and str(path) in msg
    assert 'patch_embed.proj.weight: (32, 3, 4, 4) vs (16, 3, 4, 4)' in msg
    assert 'layers.0.blocks.0.attn.relative_position_bias_table: (49, 2) vs (49, 1)' in msg
    # only the stage-1 table (2 heads in both) and the stage-3 table (4 heads) fit
    assert 'layers.1.blocks.0.attn.relative_position_bias_table' not in msg
    assert 'layers.3.blocks.0.attn.relative_position_bias_table' not in msg
    assert len(info.value.mismatched) == len(before) - 2 and not info.value.missing
    assert_unchanged(model, before)


def test_missing_and_unexpected_keys_are_listed_and_nothing_is_loaded(tmp_path):
    state = dict(pretrain_model(seed=3).state_dict())
    del state['backbone.layers.1.downsample.reduction.weight']
    del state['backbone.norm.bias']
    state['backbone.layers.0.blocks.0.attn.extra_scale'] = torch.ones(1)
    path = tmp_path / 'broken.pth'
    torch.save(dict(state_dict=state), path)
    model = backbone_with(path)
    before = snapshot(model)
    with pytest.raises(CheckpointMismatchError) as info:
        model.init_weights()
    err = info.value
    assert err.missing == ['layers.1.downsample.reduction.weight', 'norm.bias']
    assert err.unexpected == ['layers.0.blocks.0.attn.extra_scale']
    assert 'missing keys (2)' in str(err) and 'unexpected keys (1)' in str(err)
    assert_unchanged(model, before)


def test_mmpretrain_checkpoint_gets_a_converter_hint(tmp_path):
    ref = MODELS.build(dict(type='MixMIMPretrainTransformer', arch=ARCH, img_size=64,
                            window_size=[4, 4, 2, 2]))
    path = tmp_path / 'mmpretrain.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in ref.state_dict().items()}), path)
    model = backbone_with(path)
    with pytest.raises(CheckpointMismatchError,
                       match='mmpretrain_mixmim_to_mmmixmae.py') as info:
        model.init_weights()
    assert 'patch_embed.projection.weight' in info.value.unexpected
    assert 'patch_embed.proj.weight' in info.value.missing


def test_prefix_mistakes_are_explained(tmp_path):
    path = tmp_path / 'ours.pth'
    torch.save(dict(state_dict=pretrain_model().state_dict()), path)
    with pytest.raises(CheckpointMismatchError, match="set prefix='backbone.'"):
        backbone_with(path, prefix='').init_weights()
    bare = {k: v for k, v in pretrain_model().backbone.state_dict().items()}
    bare['head.weight'] = torch.zeros(10, 128)
    torch.save(bare, tmp_path / 'bare.pth')
    model = backbone_with(tmp_path / 'bare.pth')  # prefix given, no key has it: unprefixed
    report = ckpt_mod.load_pretrained_backbone(model, model.init_cfg)
    assert report.format == 'bare' and report.dropped_other == ['head.weight']
    bare['layers.0.blocks.0.gamma'] = torch.ones(16)
    torch.save(bare, tmp_path / 'bare2.pth')
    with pytest.raises(CheckpointMismatchError, match="no key starts with prefix 'backbone.'"):
        backbone_with(tmp_path / 'bare2.pth').init_weights()


def test_bad_files_and_bad_init_cfg_are_refused(tmp_path):
    text = tmp_path / 'readme.pth'
    text.write_text('hello')
    model = backbone_with(text)
    before = snapshot(model)
    with pytest.raises(InvalidCheckpointError, match='is not a checkpoint'):
        model.init_weights()

    class RunsCode:

        def __reduce__(self):
            return os.system, (f'touch {tmp_path / "pwned"}', )

    hostile = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict=dict(pretrain_model().state_dict()), x=RunsCode()), hostile)
    model.init_cfg['checkpoint'] = str(hostile)
    with pytest.raises(UnsafeCheckpointError, match='Refusing to load'):
        model.init_weights()
    assert not (tmp_path / 'pwned').exists()
    torch.save(dict(meta=dict(epoch=1)), tmp_path / 'meta.pth')
    model.init_cfg['checkpoint'] = str(tmp_path / 'meta.pth')
    with pytest.raises(CheckpointMismatchError, match='is not a state dict'):
        model.init_weights()
    assert_unchanged(model, before)

    with pytest.raises(ValueError, match='needs a checkpoint path'):
        backbone_with('').init_weights()
    with pytest.raises(ValueError, match=r"unknown \['strict'\]"):
        MixMAESwin(arch=ARCH, img_size=64, window_size=(4, 4, 2, 2),
                   init_cfg=dict(type='Pretrained', checkpoint='x.pth', strict=True)).init_weights()


def test_urls_are_downloaded_then_read_weights_only(tmp_path, monkeypatch, logged):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    source = pretrain_model(seed=4)
    good = tmp_path / 'remote' / 'mixmae_base.pth'
    good.parent.mkdir()
    torch.save(dict(state_dict=source.state_dict()), good)
    model = backbone_with(good.as_uri())
    model.init_weights()
    assert torch.equal(model.norm.weight, source.backbone.norm.weight)
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'mixmae_base.pth').exists()

    class RunsCode:

        def __reduce__(self):
            return os.system, (f'touch {tmp_path / "pwned"}', )

    bad = tmp_path / 'remote' / 'evil.pth'
    torch.save(dict(state_dict=dict(source.state_dict()), x=RunsCode()), bad)
    with pytest.raises(UnsafeCheckpointError, match='Refusing to load'):
        backbone_with(bad.as_uri()).init_weights()
    assert not (tmp_path / 'pwned').exists()
    with pytest.raises(ValueError, match='only local files and http'):
        backbone_with('s3://bucket/x.pth').init_weights()

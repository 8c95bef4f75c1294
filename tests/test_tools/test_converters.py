"""tools/model_converters: official Sense-X/MixMIM and mmpretrain checkpoints -> mmmixmae,
and mmmixmae -> backbone-only.

The official checkpoints are synthesized from mmpretrain's MixMIM (structurally the official
code) with random weights, renamed to the official key names by a mapping written here
(independent of the converter), and stored the way the official ``misc.save_model`` does:
``{'model', 'optimizer', 'epoch', 'scaler', 'args'}`` with ``args`` an argparse.Namespace.
"""
import argparse
import os
import re

import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmmixmae  # noqa: F401
from mmmixmae.checkpoint import find_state_dict, read_checkpoint
from mmmixmae.models.utils.pos_embed import swap_sincos_halves

from helpers.parity import (ATOL, IMG, _mmpretrain_classifier, _ours_classifier,
                            build_mmpretrain_mixmim, build_ours_mixmae, run_mmpretrain, run_ours)
from helpers.subprocesses import run_python
from helpers.tools import load_tool, tool_path

official_tool = load_tool('model_converters/mixmim_official_to_mmmixmae')
mmpretrain_tool = load_tool('model_converters/mmpretrain_mixmim_to_mmmixmae')
backbone_tool = load_tool('model_converters/mmmixmae_to_backbone')


# ----------------------------------------------------------------------------- official names
def unfold_to_official(t):
    """mmcv Unfold order (c, dy, dx) -> official concatenation of the four neighbours
    x0=(dy0,dx0), x1=(dy1,dx0), x2=(dy0,dx1), x3=(dy1,dx1), i.e. index dx*2C + dy*C + c."""
    c = t.shape[-1] // 4
    return t.reshape(*t.shape[:-1], c, 2, 2).transpose(-1, -3).reshape(*t.shape[:-1], 4 * c)


MODULE_NAMES = (('patch_embed.projection.', 'patch_embed.proj.'), ('.ln1.', '.norm1.'),
                ('.ln2.', '.norm2.'), ('.ffn.layers.0.0.', '.mlp.fc1.'),
                ('.ffn.layers.1.', '.mlp.fc2.'))


def to_official(mm_state):
    """mmpretrain state dict -> the official Sense-X/MixMIM names (models_mixmim*.py)."""
    out = {}
    for key, value in mm_state.items():
        if key in ('neck.ln1.weight', 'neck.ln1.bias'):
            key = 'decoder_norm.' + key.rsplit('.', 1)[1]
        elif key.startswith('head.fc.'):
            key = 'head.' + key[len('head.fc.'):]
        else:
            key = key.split('.', 1)[1]  # drop backbone. / neck.
        for mm_name, official_name in MODULE_NAMES:
            key = key.replace(mm_name, official_name)
        if '.downsample.' in key:
            value = unfold_to_official(value)
        out[key] = value.clone()
    return out


def official_checkpoint(model_state):
    """What the official misc.save_model writes."""
    return dict(
        model=model_state,
        optimizer=dict(state={}, param_groups=[dict(lr=1.2e-3, weight_decay=0.05, params=[0])]),
        epoch=599,
        scaler=dict(scale=65536.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                    _growth_tracker=17),
        args=argparse.Namespace(model='mixmim_base', batch_size=128, blr=1.5e-4, epochs=600,
                                mask_ratio=0.5, output_dir='./out', resume='', dist_url='env://',
                                cutmix_minmax=None))


@pytest.fixture
def official_pretrain(tmp_path):
    """(path, mmpretrain reference model, official state dict) of a pretraining checkpoint."""
    ref = build_mmpretrain_mixmim(seed=11)
    # an official checkpoint carries the MAE layout; put it into the reference as well
    for module, name in ((ref.backbone, 'absolute_pos_embed'), (ref.neck, 'decoder_pos_embed')):
        table = getattr(module, name)
        table.data.copy_(swap_sincos_halves(table.data))
    state = to_official(ref.state_dict())
    path = tmp_path / 'checkpoint-599.pth'
    torch.save(official_checkpoint(state), path)
    return path, ref, state


def _pattern_names(keys):
    names = {re.sub(r'\.\d+\.', '.{i}.', k, count=1) for k in keys}
    return {re.sub(r'\.\d+\.', '.{j}.', k, count=1) for k in names}


def test_official_key_names_are_the_documented_ones(official_pretrain):
    """The official names (written out below from models_mixmim.py) are mmmixmae's own
    ``backbone.*`` / ``neck.*`` names without the prefix, plus the index buffers mmmixmae
    rebuilds; and the test's official fixture uses exactly them."""
    _, _, state = official_pretrain
    names = _pattern_names(state)
    ours = _pattern_names(k.split('.', 1)[1] for k in build_ours_mixmae().state_dict())
    expected = {
        'mask_token', 'absolute_pos_embed', 'decoder_pos_embed', 'patch_embed.proj.weight',
        'patch_embed.proj.bias', 'patch_embed.norm.weight', 'patch_embed.norm.bias',
        'norm.weight', 'norm.bias', 'decoder_embed.weight', 'decoder_embed.bias',
        'decoder_norm.weight', 'decoder_norm.bias', 'decoder_pred.weight', 'decoder_pred.bias',
        'layers.{i}.downsample.reduction.weight', 'layers.{i}.downsample.norm.weight',
        'layers.{i}.downsample.norm.bias', 'layers.{i}.blocks.{j}.attn.relative_position_index',
        'layers.{i}.blocks.{j}.attn.relative_position_bias_table'
    }
    for part in ('norm1', 'attn.qkv', 'attn.proj', 'norm2', 'mlp.fc1', 'mlp.fc2'):
        for suffix in ('weight', 'bias'):
            expected.add(f'layers.{{i}}.blocks.{{j}}.{part}.{suffix}')
            expected.add(f'decoder_blocks.{{i}}.{part}.{suffix}')
    assert ours == expected - {'layers.{i}.blocks.{j}.attn.relative_position_index'}
    assert names == expected


def test_official_pretraining_checkpoint_converts_to_equal_outputs(official_pretrain, tmp_path,
                                                                   capsys):
    src, ref, state = official_pretrain
    dst = tmp_path / 'converted.pth'
    assert official_tool.main([str(src), str(dst)]) == 0
    summary = capsys.readouterr().out
    assert f'source keys : {len(state)}, each handled by one rule' in summary
    n_index = sum(k.endswith('relative_position_index') for k in state)
    assert n_index == 5
    assert re.search(rf'\s{n_index}\s+dropped: relative_position_index', summary)
    assert "not copied  : top-level entries ['optimizer', 'epoch', 'scaler', 'args']" in summary
    assert 'MAE / official sin-cos layout' in summary

    ckpt = read_checkpoint(dst)
    assert ckpt['meta']['kind'] == 'pretrain'
    assert ckpt['meta']['backbone']['arch']['depths'] == [1, 1, 2, 1]
    assert ckpt['meta']['pos_embed_layout'] == {'backbone.absolute_pos_embed': 'mae',
                                                'neck.decoder_pos_embed': 'mae'}
    assert len(ckpt['state_dict']) == len(state) - n_index
    ours = build_ours_mixmae()
    ours.load_state_dict(ckpt['state_dict'], strict=True)

    mask = torch.tensor([[[[0., 1.], [1., 0.]]]])
    x = torch.randn(3, 3, IMG, IMG)
    latent_ref, loss_ref = run_mmpretrain(ref, x, mask)
    latent, loss = run_ours(ours, x, mask)
    assert torch.allclose(latent, latent_ref, atol=ATOL), (latent - latent_ref).abs().max()
    assert torch.allclose(loss, loss_ref, atol=ATOL, rtol=1e-6)


def test_official_finetuned_checkpoint_converts_to_image_classifier(tmp_path):
    ref = _mmpretrain_classifier(seed=2)
    state = to_official(ref.state_dict())
    assert 'head.weight' in state and 'head.bias' in state
    src, dst = tmp_path / 'ft.pth', tmp_path / 'ft_mmmixmae.pth'
    torch.save(official_checkpoint(state), src)
    assert official_tool.main([str(src), str(dst)]) == 0
    ckpt = read_checkpoint(dst)
    assert ckpt['meta']['kind'] == 'classifier' and ckpt['meta']['num_classes'] == 7
    assert {'head.fc.weight', 'head.fc.bias'} <= set(ckpt['state_dict'])
    ours = _ours_classifier()
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert torch.allclose(ours(x, mode='tensor'), ref(x, mode='tensor'), atol=ATOL)


def test_unknown_source_keys_are_listed_and_nothing_is_written(official_pretrain, tmp_path,
                                                               capsys):
    _, _, state = official_pretrain
    state = dict(state, **{'ema_decay': torch.ones(1),
                           'layers.0.blocks.0.attn.talking_heads.weight': torch.ones(2, 2)})
    src, dst = tmp_path / 'bad.pth', tmp_path / 'out.pth'
    torch.save(official_checkpoint(state), src)
    assert official_tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'unknown keys (2)' in err
    assert 'ema_decay' in err and 'layers.0.blocks.0.attn.talking_heads.weight' in err
    assert not dst.exists()


def test_missing_target_keys_are_listed(official_pretrain, tmp_path, capsys):
    _, _, state = official_pretrain
    for key in ('layers.1.downsample.reduction.weight', 'decoder_norm.bias',
                'layers.2.blocks.1.mlp.fc2.weight'):
        del state[key]
    src, dst = tmp_path / 'incomplete.pth', tmp_path / 'out.pth'
    torch.save(official_checkpoint(state), src)
    assert official_tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'missing keys (3)' in err
    for key in ('backbone.layers.1.downsample.reduction.weight', 'neck.decoder_norm.bias',
                'backbone.layers.2.blocks.1.mlp.fc2.weight'):
        assert key in err
    assert not dst.exists()


def test_inconsistent_shapes_are_listed(official_pretrain, tmp_path, capsys):
    _, _, state = official_pretrain
    state['layers.1.blocks.0.mlp.fc1.weight'] = torch.zeros(100, 32)
    src, dst = tmp_path / 'odd.pth', tmp_path / 'out.pth'
    torch.save(official_checkpoint(state), src)
    assert official_tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'backbone.layers.1.blocks.0.mlp.fc1.weight: (100, 32) vs (128, 32)' in err


def test_mmengine_checkpoint_given_to_the_official_converter_gets_a_hint(tmp_path, capsys):
    ref = build_mmpretrain_mixmim(seed=1)
    src, dst = tmp_path / 'mm.pth', tmp_path / 'out.pth'
    torch.save(dict(meta=dict(epoch=300), state_dict=ref.state_dict()), src)
    assert official_tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'backbone.patch_embed.projection.weight' in err
    assert 'mmpretrain_mixmim_to_mmmixmae.py' in err


def test_official_checkpoint_given_to_the_mmpretrain_converter_gets_a_hint(
        official_pretrain, tmp_path, capsys):
    src, _, _ = official_pretrain
    assert mmpretrain_tool.main([str(src), str(tmp_path / 'out.pth')]) == 2
    err = capsys.readouterr().err
    assert 'backbone.patch_embed.proj.weight' in err
    assert 'mixmim_official_to_mmmixmae.py' in err


def test_mmpretrain_converter_cli_equal_outputs(tmp_path, capsys):
    ref = build_mmpretrain_mixmim(seed=4)
    src, dst = tmp_path / 'mmpretrain.pth', tmp_path / 'ours.pth'
    torch.save(dict(meta=dict(epoch=300), state_dict=ref.state_dict(),
                    message_hub=dict(log_scalars={'loss': HistoryBuffer([1.0, 0.5], [1, 1])})), src)
    assert mmpretrain_tool.main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "mmpretrain's sin-cos layout (height first), kept verbatim" in out
    assert re.search(r'\s9\s+patch merging: nn.Unfold channel order', out)
    ours = build_ours_mixmae()
    ours.load_state_dict(read_checkpoint(dst)['state_dict'], strict=True)
    mask = torch.tensor([[[[1., 1.], [0., 0.]]]])
    x = torch.randn(2, 3, IMG, IMG)
    latent_ref, loss_ref = run_mmpretrain(ref, x, mask)
    latent, loss = run_ours(ours, x, mask)
    assert torch.allclose(latent, latent_ref, atol=ATOL)
    assert torch.allclose(loss, loss_ref, atol=ATOL, rtol=1e-6)


def test_mmpretrain_converter_rejects_unknown_keys(tmp_path, capsys):
    ref = _mmpretrain_classifier(seed=6)
    state = dict(ref.state_dict())
    state['backbone.layers.0.blocks.0.gamma_1'] = torch.ones(16)
    state['neck.something'] = torch.ones(3)
    torch.save(dict(state_dict=state), tmp_path / 'x.pth')
    assert mmpretrain_tool.main([str(tmp_path / 'x.pth'), str(tmp_path / 'y.pth')]) == 2
    err = capsys.readouterr().err
    assert 'unknown keys (2)' in err and 'gamma_1' in err and 'neck.something' in err


# ----------------------------------------------------------------------------- backbone only
def test_backbone_extraction_keeps_exactly_the_backbone(official_pretrain, tmp_path, capsys):
    src, _, _ = official_pretrain
    full = tmp_path / 'full.pth'
    assert official_tool.main([str(src), str(full)]) == 0
    full_ckpt = read_checkpoint(full)
    # the way a Runner checkpoint looks: training state next to the weights
    full_ckpt['message_hub'] = dict(log_scalars={'train/loss': HistoryBuffer([0.9, 0.8], [1, 1])})
    full_ckpt['optimizer'] = dict(state={}, param_groups=[])
    full_ckpt['state_dict']['data_preprocessor.mean'] = torch.zeros(3, 1, 1)
    torch.save(full_ckpt, full)
    capsys.readouterr()

    dst = tmp_path / 'backbone.pth'
    assert backbone_tool.main([str(full), str(dst)]) == 0
    out = capsys.readouterr().out
    n_neck = sum(k.startswith('neck.') for k in full_ckpt['state_dict'])
    assert re.search(rf'\s{n_neck}\s+dropped: neck\.\* \(decoder\)', out)
    assert re.search(r'\s1\s+dropped: data_preprocessor buffers', out)
    ckpt = read_checkpoint(dst)
    expected = {k: v for k, v in full_ckpt['state_dict'].items() if k.startswith('backbone.')}
    assert set(ckpt) == {'meta', 'state_dict'}
    assert list(ckpt['state_dict']) == list(expected)
    for k, v in expected.items():
        assert torch.equal(ckpt['state_dict'][k], v)


def test_backbone_extraction_refuses_foreign_keys(tmp_path, capsys):
    model = build_ours_mixmae()
    state = dict(model.state_dict())
    state['ema.backbone.norm.weight'] = torch.ones(128)
    torch.save(dict(state_dict=state), tmp_path / 'x.pth')
    assert backbone_tool.main([str(tmp_path / 'x.pth'), str(tmp_path / 'y.pth')]) == 2
    assert 'ema.backbone.norm.weight' in capsys.readouterr().err
    torch.save(dict(model=dict(model.backbone.state_dict())), tmp_path / 'z.pth')
    assert backbone_tool.main([str(tmp_path / 'z.pth'), str(tmp_path / 'y.pth')]) == 2
    assert 'has no backbone.* keys' in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad files
@pytest.mark.parametrize('tool', [official_tool, mmpretrain_tool, backbone_tool])
def test_files_that_are_not_checkpoints_are_refused(tool, tmp_path, capsys):
    text = tmp_path / 'notes.pth'
    text.write_text('this is not a checkpoint\n')
    assert tool.main([str(text), str(tmp_path / 'out.pth')]) == 2
    assert 'is not a checkpoint written by torch.save' in capsys.readouterr().err
    assert tool.main([str(tmp_path / 'absent.pth'), str(tmp_path / 'out.pth')]) == 2
    assert 'checkpoint file not found' in capsys.readouterr().err
    torch.save(dict(epoch=3, note='no weights here'), tmp_path / 'meta_only.pth')
    assert tool.main([str(tmp_path / 'meta_only.pth'), str(tmp_path / 'out.pth')]) == 2
    assert 'is not a state dict' in capsys.readouterr().err
    assert not (tmp_path / 'out.pth').exists()


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _run(script, *args):
    return run_python([tool_path(f'model_converters/{script}'), *args], timeout=300, threads=2)


@pytest.mark.slow  # two interpreter start-ups (torch + mmpretrain imports)
def test_cli_end_to_end_and_a_pickle_that_would_run_code(official_pretrain, tmp_path):
    src, _, _ = official_pretrain
    dst = tmp_path / 'sub' / 'converted.pth'
    ok = _run('mixmim_official_to_mmmixmae.py', src, dst)
    assert ok.returncode == 0, ok.stderr
    assert 'wrote       : ' in ok.stdout and dst.exists()

    marker = tmp_path / 'pwned'
    hostile = tmp_path / 'hostile.pth'
    torch.save(dict(model=dict(find_state_dict(read_checkpoint(dst))[0]),
                    args=_RunsCode(marker)), hostile)
    bad = _run('mixmim_official_to_mmmixmae.py', hostile, tmp_path / 'never.pth')
    assert bad.returncode == 2
    assert 'Refusing to load checkpoint' in bad.stderr and 'system' in bad.stderr
    assert 'Traceback' not in bad.stderr
    assert not marker.exists() and not (tmp_path / 'never.pth').exists()

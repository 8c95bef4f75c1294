import pytest
import torch

import mmmixmae  # noqa: F401
from mmmixmae.models import MixMAESwin
from mmmixmae.models.utils.mixing import random_mixing_mask, upsample_mask

from helpers.archs import TOY


def toy(**kwargs):
    cfg = dict(arch=TOY, img_size=64, window_size=(4, 4, 2, 2))
    cfg.update(kwargs)
    return MixMAESwin(**cfg)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_arch_zoo_and_custom_arch():
    assert MixMAESwin.arch_zoo['base'] == dict(embed_dims=128, depths=[2, 2, 18, 2],
                                               num_heads=[4, 8, 16, 32])
    assert MixMAESwin.arch_zoo['huge']['num_heads'] == [11, 22, 44, 88]
    with pytest.raises(ValueError, match='unknown arch'):
        MixMAESwin(arch='gigantic')
    with pytest.raises(ValueError, match='misses keys'):
        MixMAESwin(arch=dict(embed_dims=16, depths=[1, 1]))


def test_windows_are_clamped_and_checked():
    m = MixMAESwin(arch='tiny', img_size=224, window_size=(14, 14, 14, 14))
    assert m.window_sizes == [(14, 14), (14, 14), (14, 14), (7, 7)]
    assert m.layers[3].blocks[0].attn.relative_position_bias_table.shape == (13 * 13, 24)
    with pytest.raises(ValueError, match='window 12 of stage 0 does not divide its grid 56x56'):
        MixMAESwin(arch='tiny', img_size=224, window_size=(12, 14, 14, 7))
    with pytest.raises(ValueError, match='not a multiple of the encoder stride 32'):
        MixMAESwin(arch='tiny', img_size=200)


def test_pretrain_input_checks_come_before_compute():
    m = toy()
    mask = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match='multiples of 32, got 60x64'):
        m(torch.randn(2, 3, 60, 64), mask)
    with pytest.raises(ValueError, match=r'shape \(1, 1, 2, 2\) .* got \(1, 1, 3, 3\)'):
        m(torch.randn(2, 3, 64, 64), torch.zeros(1, 1, 3, 3))
    # 96 px: stage-0 grid 24 is divisible by 4, stage-2 grid 6 by 2, stage-3 grid 3 is not
    with pytest.raises(ValueError, match='window 2x2 of stage 3 does not divide its grid 3x3'):
        m(torch.randn(2, 3, 96, 96), torch.zeros(1, 1, 3, 3))


def test_pretrain_output_shapes_and_odd_batch():
    torch.manual_seed(0)
    m = toy().eval()
    x = torch.randn(3, 3, 64, 64)
    mask = random_mixing_mask((2, 2), 0.5)
    latent, mask_out = m(x, mask)
    assert latent.shape == (3, 4, 128)
    assert torch.equal(mask_out, mask)
    # odd batch: the middle image is its own partner, as in a batch of one
    alone, _ = m(x[1:2], mask)
    assert torch.allclose(latent[1], alone[0], atol=1e-5)


@pytest.mark.parametrize('dtype', [None, torch.bfloat16, torch.float16])
@pytest.mark.parametrize('fused', [True, False])
def test_no_leakage_between_mixed_images(dtype, fused):
    """Changing the partner image leaves a sample's own tokens bit-identical."""
    torch.manual_seed(0)
    m = toy(use_fused_attn=fused).eval()
    mask = random_mixing_mask((2, 2), 0.5)
    x = torch.randn(4, 3, 64, 64)
    y = x.clone()
    y[3] = torch.randn(3, 64, 64) * 5  # partner of sample 0
    seen = []  # every stage's output tokens (before its downsample), in call order
    hooks = [stage.register_forward_hook(lambda mod, args, out: seen.append(out[0]))
             for stage in m.layers]
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        lx, _ = m(x, mask)
        ly, _ = m(y, mask)
    for h in hooks:
        h.remove()
    own = (mask.reshape(-1) == 0)
    assert own.any() and (~own).any()
    assert torch.equal(lx[0, own], ly[0, own])
    # sample 3's own tokens did change, and so did sample 0's borrowed ones
    assert not torch.equal(lx[3, own], ly[3, own])
    assert not torch.equal(lx[0, ~own], ly[0, ~own])
    # and at every intermediate stage, at that stage's resolution
    assert len(seen) == 2 * m.num_stages
    for i in range(m.num_stages):
        grid = (16 >> i, 16 >> i)
        own_i = upsample_mask(mask, grid).reshape(-1) == 0
        sx, sy = seen[i], seen[m.num_stages + i]
        assert sx.shape[1] == grid[0] * grid[1]
        assert torch.equal(sx[0, own_i], sy[0, own_i]), f'stage {i} leaks'
        assert not torch.equal(sx[3, own_i], sy[3, own_i]), f'stage {i}'
    assert torch.isfinite(lx.float()).all()


def test_without_isolation_images_leak():
    torch.manual_seed(0)
    m = toy(attn_isolation=False).eval()
    mask = random_mixing_mask((2, 2), 0.5)
    x = torch.randn(4, 3, 64, 64)
    y = x.clone()
    y[3] = torch.randn(3, 64, 64)
    with torch.no_grad():
        lx, _ = m(x, mask)
        ly, _ = m(y, mask)
    own = mask.reshape(-1) == 0
    assert not torch.allclose(lx[0, own], ly[0, own])


@pytest.mark.parametrize('fill', ['mask_token', 'zeros'])
def test_fill_modes_do_not_use_the_partner(fill):
    torch.manual_seed(0)
    m = toy(fill_mode=fill, attn_isolation=False).eval()
    mask = random_mixing_mask((2, 2), 0.5)
    x = torch.randn(4, 3, 64, 64)
    y = x.clone()
    y[3] = torch.randn(3, 64, 64)
    with torch.no_grad():
        lx, _ = m(x, mask)
        ly, _ = m(y, mask)
    # nothing of image 3 reaches sample 0 at all
    assert torch.equal(lx[0], ly[0])
    assert hasattr(m, 'mask_token') == (fill == 'mask_token')


def test_fused_and_reference_paths_agree():
    torch.manual_seed(0)
    fused = toy(use_fused_attn=True).eval()
    ref = toy(use_fused_attn=False).eval()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 64, 64)
    mask = random_mixing_mask((2, 2), 0.5)
    with torch.no_grad():
        a, _ = fused(x, mask)
        b, _ = ref(x, mask)
        fa = fused(x)
        fb = ref(x)
    assert torch.allclose(a, b, atol=2e-5, rtol=1e-5)
    assert torch.allclose(fa[0], fb[0], atol=2e-5, rtol=1e-5)


def test_gradients_flow_to_every_trainable_parameter():
    torch.manual_seed(0)
    m = toy()
    latent, _ = m(torch.randn(2, 3, 64, 64), random_mixing_mask((2, 2), 0.5))
    latent.square().mean().backward()
    for name, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert not m.absolute_pos_embed.requires_grad


def test_parameter_counts_base():
    from mmpretrain.registry import MODELS
    model = MODELS.build(
        dict(type='MixMAE',
             backbone=dict(type='MixMAESwin', arch='base'),
             neck=dict(type='MixMAEDecoder', in_channels=1024),
             head=dict(type='MixMAEPretrainHead')))
    assert count(model) == 114_665_784
    clf = MODELS.build(
        dict(type='ImageClassifier', backbone=dict(type='MixMAESwin', arch='base'),
             head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024)))
    assert count(clf) == 88_344_352


def test_classification_and_dense_outputs():
    torch.manual_seed(0)
    m = toy(out_indices=(0, 1, 2, 3), out_type='featmap').eval()
    outs = m(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4),
                                              (2, 128, 2, 2)]
    pooled = toy().eval()(torch.randn(2, 3, 64, 64))
    assert len(pooled) == 1 and pooled[0].shape == (2, 128)
    with pytest.raises(ValueError, match='out_indices entry 4 is outside 0..3'):
        toy(out_indices=(4, ))


def test_layer_depth_matches_official_ids():
    m = MixMAESwin(arch='base')
    n = 26  # sum(depths) + 2
    assert m.get_layer_depth('absolute_pos_embed') == (0, n)
    assert m.get_layer_depth('patch_embed.proj.weight') == (0, n)
    assert m.get_layer_depth('layers.0.blocks.0.attn.qkv.weight') == (1, n)
    assert m.get_layer_depth('layers.2.blocks.17.mlp.fc2.bias') == (22, n)
    assert m.get_layer_depth('layers.3.blocks.1.norm1.weight') == (24, n)
    assert m.get_layer_depth('layers.0.downsample.reduction.weight') == (3, n)
    assert m.get_layer_depth('layers.2.downsample.norm.weight') == (23, n)
    assert m.get_layer_depth('norm.weight') == (24, n)
    assert m.get_layer_depth('backbone.norm.weight', 'backbone.') == (24, n)


def test_adapt_state_dict_is_what_the_load_hook_applies():
    torch.manual_seed(0)
    src = toy(img_size=128, window_size=(8, 8, 4, 2))
    dst = toy()
    sd = src.state_dict()
    adapted = dst.adapt_state_dict(sd)
    assert not any(k.endswith('relative_position_index') for k in adapted)
    assert adapted['absolute_pos_embed'].shape == dst.absolute_pos_embed.shape
    table = 'layers.0.blocks.0.attn.relative_position_bias_table'
    assert sd[table].shape == (225, 1) and adapted[table].shape == (49, 1)
    assert torch.equal(adapted['patch_embed.proj.weight'], sd['patch_embed.proj.weight'])
    dst.load_state_dict(sd, strict=False)  # through the pre-hook
    for key, value in adapted.items():
        assert torch.equal(dst.state_dict()[key], value), key
    assert dst.encoder_stride == 32 and toy(arch=dict(embed_dims=16, depths=[1, 1, 1],
                                                      num_heads=[1, 2, 2]),
                                            window_size=(4, 4, 4),
                                            out_indices=(2, )).encoder_stride == 16
    with pytest.raises(ValueError, match='not a square grid'):
        dst.adapt_state_dict({'absolute_pos_embed': torch.zeros(1, 15, 16)})


def test_forward_dispatches_to_the_two_paths():
    torch.manual_seed(0)
    m = toy(out_indices=(1, 3), out_type='featmap').eval()
    x = torch.randn(2, 3, 64, 64)
    mask = random_mixing_mask((2, 2), 0.5)
    with torch.no_grad():
        latent, mask_out = m(x, mask)
        feats = m(x)
        assert torch.equal(latent, m.forward_mixed(x, mask)[0])
        assert all(torch.equal(a, b) for a, b in zip(feats, m.forward_features(x)))
    assert latent.shape == (2, 4, 128) and torch.equal(mask_out, mask)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 8), (2, 128, 2, 2)]

"""Dense-task features of MixMAESwin: what mmdet and mmseg rely on.

Every test builds a tiny encoder (seconds on 2 cores) and checks numbers: which output
positions a single perturbed pixel reaches (that pins down padding, cropping, shifting and
global attention), equality of checkpointed and plain gradients, frozen parameters staying
put through an optimizer step.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import mmmixmae  # noqa: F401
from mmmixmae.models import MixMAESwin
from mmmixmae.models.backbones.mixmae_blocks import MixMAEBlock

from helpers.archs import TOY


def dense(**kwargs):
    cfg = dict(arch=TOY, img_size=64, window_size=(4, 4, 2, 2), out_indices=(0, 1, 2, 3),
               out_type='featmap')
    cfg.update(kwargs)
    return MixMAESwin(**cfg)


def expected_sizes(h, w):
    """Stride-4 stem on the 4-padded image, then ceil-halving per stage."""
    sizes = [(math.ceil(h / 4), math.ceil(w / 4))]
    for _ in range(3):
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    return sizes


def changed(a, b, tol=1e-6):
    """``[H, W]`` bool map of positions whose channels differ (first image)."""
    return (a - b).abs().amax(dim=1)[0] > tol


@pytest.mark.parametrize('hw', [(100, 150), (67, 93), (32, 32), (33, 65)])
def test_feature_maps_at_strides_4_8_16_32_with_ceiled_sizes(hw):
    torch.manual_seed(0)
    m = dense().eval()
    outs = m(torch.randn(2, 3, *hw))
    assert [tuple(o.shape) for o in outs] == [
        (2, c, *s) for c, s in zip([16, 32, 64, 128], expected_sizes(*hw))]
    assert all(torch.isfinite(o).all() for o in outs)
    # every returned stage has its own LayerNorm: unit variance over channels per position
    for o in outs:
        var = o.var(dim=1, unbiased=False)
        assert torch.allclose(var, torch.ones_like(var), atol=1e-3)


def test_mmdet_batch_of_two_sizes_through_det_preprocessor():
    """Images of 100x150 and 67x93 batched by mmdet (pad to /32) give the padded maps,
    and the larger image's maps do not depend on the smaller one."""
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.structures import DetDataSample
    torch.manual_seed(0)
    pre = DetDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                              bgr_to_rgb=True, pad_size_divisor=32)
    imgs = [torch.randint(0, 256, (3, 100, 150), dtype=torch.uint8),
            torch.randint(0, 256, (3, 67, 93), dtype=torch.uint8)]
    samples = [DetDataSample(metainfo=dict(img_shape=tuple(i.shape[1:]))) for i in imgs]
    batch = pre(dict(inputs=imgs, data_samples=samples), training=False)
    x = batch['inputs']
    assert tuple(x.shape) == (2, 3, 128, 160)
    m = dense().eval()
    outs = m(x)
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 40), (16, 20), (8, 10), (4, 5)]
    alone = m(x[:1])
    for o, a in zip(outs, alone):
        assert torch.allclose(o[:1], a, atol=1e-5)


def test_padding_is_cropped_back_at_odd_sizes():
    """67x93: stage-0 grid 17x24, padded to 20x24 for 4x4 windows.  A change of the last
    pixel reaches exactly its own (partly padded) window row 16, columns 20-23 of stage 0."""
    torch.manual_seed(0)
    m = dense().eval()
    x = torch.randn(1, 3, 67, 93)
    y = x.clone()
    y[..., 66, 92] += 5.
    diff = changed(m(x)[0], m(y)[0])
    assert diff.shape == (17, 24)
    assert sorted(map(tuple, diff.nonzero().tolist())) == [(16, 20), (16, 21), (16, 22),
                                                           (16, 23)]
    # the first pixel reaches the top-left window only
    y = x.clone()
    y[..., 0, 0] += 5.
    diff = changed(m(x)[0], m(y)[0])
    assert diff[:4, :4].all() and diff.sum() == 16


def test_absolute_position_embedding_is_resized_to_the_input_grid():
    m = dense().eval()
    assert torch.equal(m.pos_embed_for((16, 16)), m.absolute_pos_embed)  # native 64 px grid
    table = m.absolute_pos_embed.reshape(1, 16, 16, 16).permute(0, 3, 1, 2)
    ref = F.interpolate(table, size=(17, 24), mode='bicubic', align_corners=False)
    got = m.pos_embed_for((17, 24))
    assert got.shape == (1, 17 * 24, 16)
    assert torch.allclose(got, ref.permute(0, 2, 3, 1).reshape(1, -1, 16), atol=1e-6)
    # and it is what the forward pass adds: zeroing the table changes the 67x93 outputs
    x = torch.randn(1, 3, 67, 93)
    before = m(x)[0]
    with torch.no_grad():
        m.absolute_pos_embed.zero_()
    assert (m(x)[0] - before).abs().max() > 1e-2


def test_shifted_windows_add_no_parameters_and_change_outputs():
    torch.manual_seed(0)
    plain = dense().eval()
    shifted = dense(shift_window=True).eval()
    plain_sd, shifted_sd = plain.state_dict(), shifted.state_dict()
    assert {k: v.shape for k, v in plain_sd.items()} == {k: v.shape for k, v in shifted_sd.items()}
    shifted.load_state_dict(plain_sd, strict=True)
    x = torch.randn(1, 3, 128, 128)
    a, b = plain(x), shifted(x)
    # stages 0 and 1 have one (unshifted) block each; stage 2's second block is shifted
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[2] - b[2]).abs().max() > 1e-2 and (a[3] - b[3]).abs().max() > 1e-2


@pytest.mark.parametrize('hw', [(8, 8), (7, 7)])
def test_shifted_window_block_keeps_wrapped_regions_apart(hw):
    """One shifted 4x4 block on an 8x8 (or 7x7, padded) grid: token (0, 0) is rolled into
    the bottom-right window together with rows/cols 6-7 but masked off from them, so it
    reaches only rows/cols 0-1; token (3, 3) lands in an unmasked window: rows/cols 2-5."""
    torch.manual_seed(0)
    block = MixMAEBlock(8, 2, (4, 4), shift=True).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
    h, w = hw
    x = torch.randn(1, h * w, 8)
    bump = torch.randn(8) * 3  # not a constant: LayerNorm would remove that

    def reach(i, j):
        y = x.clone()
        y[0, i * w + j] += bump
        d = (block(y, hw) - block(x, hw)).abs().amax(-1)[0].reshape(h, w) > 1e-6
        return sorted(map(tuple, d.nonzero().tolist()))

    assert reach(0, 0) == [(r, c) for r in (0, 1) for c in (0, 1)]
    assert reach(3, 3) == [(r, c) for r in range(2, min(6, h)) for c in range(2, min(6, w))]


def test_global_attention_block_at_odd_size_sees_the_whole_map():
    """Block 2 (first of stage 2) attends over the whole 5x6 stage-2 map of a 67x93 image."""
    torch.manual_seed(0)
    local = dense().eval()
    glob = dense(global_attn_indexes=(2, )).eval()
    glob.load_state_dict(local.state_dict(), strict=True)  # no new parameters either
    x = torch.randn(1, 3, 67, 93)
    y = x.clone()
    y[..., 0, 0] += 5.
    d_local = changed(local(x)[2], local(y)[2])
    d_glob = changed(glob(x)[2], glob(y)[2])
    assert d_local.shape == d_glob.shape == (5, 6)
    assert d_local[:2, :2].all() and d_local.sum() == 4  # windows 2x2: stays top-left
    assert d_glob.all()  # global: every position, including the far corner
    with pytest.raises(ValueError, match='global_attn_indexes entry 5 is outside 0..4'):
        dense(global_attn_indexes=(5, ))


def test_activation_checkpointing_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = dense(drop_path_rate=0.0).train()
    cp = dense(drop_path_rate=0.0, with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 67, 93)
    weights = [torch.randn_like(o) for o in plain(x)]
    grads = []
    for model in (plain, cp):
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        outs = model(xi)
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()
        grads.append(({n: p.grad.clone() for n, p in model.named_parameters()
                       if p.grad is not None}, xi.grad.clone(), [o.detach() for o in outs]))
    (g1, xg1, o1), (g2, xg2, o2) = grads
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(o1, o2))
    assert g1.keys() == g2.keys()
    trainable = {n for n, p in plain.named_parameters() if p.requires_grad}
    assert set(g1) == trainable  # every trainable parameter got a gradient
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-5, rtol=1e-4), n
    assert torch.allclose(xg1, xg2, atol=1e-6)
    assert xg1.abs().sum() > 0


@pytest.mark.parametrize('frozen', [0, 1, 2])
def test_frozen_stages(frozen):
    torch.manual_seed(0)
    m = dense(frozen_stages=frozen, drop_path_rate=0.1)
    frozen_prefixes = ['patch_embed.'] + [f'layers.{i}.' for i in range(frozen)] + \
        [f'norm{i}.' for i in range(frozen)]
    for name, p in m.named_parameters():
        should_freeze = name == 'absolute_pos_embed' or any(
            name.startswith(f) for f in frozen_prefixes)
        assert p.requires_grad is not should_freeze, name
    m.train()
    frozen_modules = [m.patch_embed] + [m.layers[i] for i in range(frozen)]
    assert all(not mod.training for f in frozen_modules for mod in f.modules())
    assert all(mod.training for i in range(frozen, 4) for mod in m.layers[i].modules())
    # a training step moves only the unfrozen parameters
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    # (a random projection: the squared LayerNorm outputs would sum to a constant)
    sum((o * torch.randn_like(o)).sum() for o in m(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    for name, p in m.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        assert moved is p.requires_grad, name


def test_frozen_stages_out_of_range_is_refused():
    with pytest.raises(ValueError, match='frozen_stages 5 is outside -1..4'):
        dense(frozen_stages=5)


def test_bad_dense_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match='out_indices entry 4 is outside 0..3'):
        dense(out_indices=(0, 4))
    with pytest.raises(ValueError, match='out_indices entry -1 is outside 0..3'):
        dense(out_indices=(-1, ))
    m = dense().eval()
    with pytest.raises(ValueError, match='input 31x64 is smaller than one 32-pixel cell'):
        m(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match='input 64x16 is smaller than one 32-pixel cell'):
        m(torch.randn(1, 3, 64, 16))
    assert [tuple(o.shape[2:]) for o in m(torch.randn(1, 3, 32, 32))] == [(8, 8), (4, 4),
                                                                        (2, 2), (1, 1)]

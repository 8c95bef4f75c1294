"""Loading weights at another image size or window size: 224 px / W14 -> 384 px / W16-W24.

Shapes of the absolute position table and of every relative-position table, bicubic
interpolation (torch, no scipy), ``relative_position_index`` rebuilt and never loaded, and
outputs at 384 px that track the 224 px outputs on the same (upsampled) images.
"""
import glob
import math
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import mmmixmae  # noqa: F401
from mmmixmae.models import MixMAESwin
from mmmixmae.checkpoint import load_pretrained_backbone

ARCH = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
W224 = (14, 14, 14, 7)
W384 = (16, 16, 24, 12)


def model_224(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MixMAESwin(arch=ARCH, img_size=224, window_size=W224, **kwargs)
    # tables like a trained Swin's: a smooth locality prior per head plus noise
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                w = (math.isqrt(p.shape[0]) + 1) // 2
                d = torch.arange(-(w - 1), w).float()
                dist = (d[:, None]**2 + d[None, :]**2).sqrt().reshape(-1, 1)
                p.copy_(-0.3 * dist * torch.linspace(0.5, 1.5, p.shape[1])[None]
                        + 0.02 * torch.randn_like(p))
    return model.eval()


def model_384(**kwargs):
    return MixMAESwin(arch=ARCH, img_size=384, window_size=W384, **kwargs).eval()


def bicubic_table(table, src, dst):
    """Independent reference: a (2s-1)^2 x heads table resized as a heads-channel image."""
    heads = table.shape[1]
    img = table.t().reshape(1, heads, 2 * src - 1, 2 * src - 1)
    out = F.interpolate(img, size=(2 * dst - 1, 2 * dst - 1), mode='bicubic',
                        align_corners=False)
    return out.reshape(heads, -1).t()


def test_224_state_dict_loads_into_384_with_bicubic_tables_and_no_scipy(monkeypatch):
    src = model_224()
    state = src.state_dict()
    dst = model_384()
    # scipy (whose interp2d is gone in 1.14) must not be needed
    for name in ('scipy', 'scipy.interpolate'):
        monkeypatch.setitem(sys.modules, name, None)
    dst.load_state_dict(state, strict=True)

    assert dst.absolute_pos_embed.shape == (1, 96 * 96, 32)
    grid = state['absolute_pos_embed'].reshape(1, 56, 56, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(96, 96), mode='bicubic', align_corners=False)
    assert torch.allclose(dst.absolute_pos_embed,
                          expected.permute(0, 2, 3, 1).reshape(1, 96 * 96, 32), atol=1e-6)

    for i, (w_src, w_dst, heads) in enumerate(zip(W224, W384, ARCH['num_heads'])):
        key = f'layers.{i}.blocks.0.attn.relative_position_bias_table'
        table = dst.state_dict()[key]
        assert table.shape == ((2 * w_dst - 1)**2, heads)
        assert torch.allclose(table, bicubic_table(state[key], w_src, w_dst), atol=1e-6)
    assert [dst.layers[i].blocks[0].attn.relative_position_bias_table.shape[0]
            for i in range(4)] == [31 * 31, 31 * 31, 47 * 47, 23 * 23]
    # every other tensor is copied as is
    for key, value in state.items():
        if key != 'absolute_pos_embed' and not key.endswith('relative_position_bias_table'):
            assert torch.equal(dst.state_dict()[key], value), key


def _reference_index(w):
    """Swin's index: (dy + w - 1) * (2w - 1) + (dx + w - 1) for token pairs in raster order."""
    y, x = np.divmod(np.arange(w * w), w)
    dy = y[:, None] - y[None, :]
    dx = x[:, None] - x[None, :]
    return torch.from_numpy((dy + w - 1) * (2 * w - 1) + (dx + w - 1)).long()


def test_relative_position_index_is_rebuilt_never_loaded():
    src = model_224()
    state = dict(src.state_dict())
    assert not any(k.endswith('relative_position_index') for k in state)
    # an official checkpoint carries its 224-px index buffers; they must be ignored
    for i, w in enumerate((14, 14, 7, 7)):
        state[f'layers.{i}.blocks.0.attn.relative_position_index'] = \
            torch.zeros(w * w, w * w, dtype=torch.long)
    dst = model_384()
    dst.load_state_dict(state, strict=True)
    assert not any(k.endswith('relative_position_index') for k in dst.state_dict())
    for i, w in enumerate(W384):
        index = dst.layers[i].blocks[0].attn.relative_position_index
        assert torch.equal(index, _reference_index(w)), i


def test_load_pretrained_reports_the_interpolated_tables(tmp_path, monkeypatch):
    from mmmixmae.checkpoint import pretrained as ckpt_mod
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda *a, **k: None)
    src = model_224()
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in src.state_dict().items()}),
               tmp_path / 'pre.pth')
    dst = model_384(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'pre.pth'),
                                  prefix='backbone.'))
    report = load_pretrained_backbone(dst, dst.init_cfg)
    assert report.interpolated == [
        'absolute_pos_embed (1, 3136, 32)->(1, 9216, 32)',
        'layers.0.blocks.0.attn.relative_position_bias_table (729, 1)->(961, 1)',
        'layers.1.blocks.0.attn.relative_position_bias_table (729, 2)->(961, 2)',
        'layers.2.blocks.0.attn.relative_position_bias_table (729, 4)->(2209, 4)',
        'layers.3.blocks.0.attn.relative_position_bias_table (169, 8)->(529, 8)',
    ]
    # the init_cfg path gives exactly what load_state_dict gives
    direct = model_384()
    direct.load_state_dict(src.state_dict())
    for key, value in direct.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value), key


def _images(root, size):
    files = sorted(glob.glob(osp.join(root, 'coco_voc3', 'JPEGImages', '*.jpg')))[:3]
    assert len(files) == 3, files
    imgs = [torch.from_numpy(np.array(Image.open(f).convert('RGB').resize(
        (size, size), Image.BICUBIC))).permute(2, 0, 1).float() for f in files]
    x = torch.stack(imgs)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (x - mean) / std


def _corr(a, b):
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def test_384_model_tracks_the_224_model_on_real_images(shared_data):
    """Criterion: for each of 3 real images, the final feature map of the 384 model on the
    image upsampled 224 -> 384 (average-pooled to 7x7) correlates with the 224 model's map
    (Pearson r >= 0.7 over all 7x7x256 values), better than with any other image's map,
    and its pooled features correlate with r >= 0.95.  A 384 model with its own fresh
    weights stays near r = 0 (the criterion is not met by chance)."""
    src = model_224(out_type='featmap')
    dst = model_384(out_type='featmap')
    dst.load_state_dict(src.state_dict())
    fresh = model_384(out_type='featmap')
    x = _images(shared_data, 224)
    x_up = F.interpolate(x, size=(384, 384), mode='bicubic', align_corners=False)
    with torch.no_grad():
        f224 = src(x)[0]
        f384 = dst(x_up)[0]
        f_fresh = fresh(x_up)[0]
    assert f224.shape == (3, 256, 7, 7) and f384.shape == (3, 256, 12, 12)
    assert torch.isfinite(f384).all()
    a = f224.flatten(1)
    b = F.adaptive_avg_pool2d(f384, (7, 7)).flatten(1)
    corr = torch.stack([_corr(a, b.roll(s, 0)) for s in range(3)])  # row 0: same image
    assert (corr[0] >= 0.7).all(), corr
    assert (corr[0] > corr[1:].max(0).values + 0.1).all(), corr
    assert (_corr(f224.mean((2, 3)), f384.mean((2, 3))) >= 0.95).all()
    fresh_corr = _corr(a, F.adaptive_avg_pool2d(f_fresh, (7, 7)).flatten(1))
    assert (fresh_corr.abs() < 0.2).all(), fresh_corr


def test_any_dense_input_size_runs_after_loading():
    dst = model_384(out_indices=(0, 1, 2, 3), out_type='featmap')
    dst.load_state_dict(model_224().state_dict(), strict=False)
    with torch.no_grad():
        outs = dst(torch.randn(1, 3, 320, 448))
    assert [tuple(o.shape[-2:]) for o in outs] == [(80, 112), (40, 56), (20, 28), (10, 14)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('bad', ['heads', 'tokens'])
def test_tables_that_cannot_be_interpolated_are_refused(bad, tmp_path, monkeypatch):
    from mmmixmae.checkpoint import pretrained as ckpt_mod
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda *a, **k: None)
    state = {f'backbone.{k}': v for k, v in model_224().state_dict().items()}
    if bad == 'heads':
        state['backbone.layers.2.blocks.0.attn.relative_position_bias_table'] = torch.zeros(729, 3)
        match = r'layers.2.blocks.0.attn.relative_position_bias_table: \(729, 3\) vs \(2209, 4\)'
    else:
        state['backbone.absolute_pos_embed'] = torch.zeros(1, 3000, 32)
        match = 'absolute_pos_embed: 3000 tokens is not a square grid'
    torch.save(dict(state_dict=state), tmp_path / 'x.pth')
    dst = model_384(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'x.pth'),
                                  prefix='backbone.'))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        dst.init_weights()
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())

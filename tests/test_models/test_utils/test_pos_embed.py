import numpy as np
import pytest
import torch

from mmmixmae.models.utils.pos_embed import (build_2d_sincos_pos_embed, resize_pos_embed,
                                             swap_sincos_halves)


def mae_formula(dim, h, w):
    """MAE's published construction, written out with numpy in float64."""

    def one_d(d, pos):
        omega = 1. / 10000**(np.arange(d // 2, dtype=np.float64) / (d / 2.))
        out = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_w, grid_h = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    # MAE: the first half encodes grid[0], which is the width coordinate
    return np.concatenate([one_d(dim // 2, grid_w), one_d(dim // 2, grid_h)], axis=1)


@pytest.mark.parametrize('dim,h,w', [(16, 4, 4), (128, 56, 56), (32, 3, 5)])
def test_sincos_equals_mae_formula(dim, h, w):
    ours = build_2d_sincos_pos_embed(dim, (h, w))
    assert ours.shape == (1, h * w, dim)
    ref = torch.from_numpy(mae_formula(dim, h, w)).float()
    assert torch.equal(ours[0], ref)


def test_width_fills_first_half():
    emb = build_2d_sincos_pos_embed(8, (2, 3))[0]
    # token (row 0, col 1) vs (row 0, col 0): only the first half differs
    assert not torch.equal(emb[1, :4], emb[0, :4])
    assert torch.equal(emb[1, 4:], emb[0, 4:])
    # token (row 1, col 0) vs (row 0, col 0): only the second half differs
    assert torch.equal(emb[3, :4], emb[0, :4])
    assert not torch.equal(emb[3, 4:], emb[0, 4:])


def test_swap_halves_is_an_involution():
    emb = build_2d_sincos_pos_embed(16, 4)
    swapped = swap_sincos_halves(emb)
    assert torch.equal(swapped[..., :8], emb[..., 8:])
    assert torch.equal(swap_sincos_halves(swapped), emb)


def test_resize_identity_and_shape():
    emb = build_2d_sincos_pos_embed(16, 4)
    assert resize_pos_embed(emb, (4, 4), (4, 4)) is emb
    up = resize_pos_embed(emb, (4, 4), (6, 8))
    assert up.shape == (1, 48, 16)
    # constant channels stay constant under bicubic interpolation
    const = torch.ones(1, 16, 3)
    assert torch.allclose(resize_pos_embed(const, (4, 4), (7, 7)), torch.ones(1, 49, 3), atol=1e-6)
    with pytest.raises(ValueError, match='not 5x5'):
        resize_pos_embed(emb, (5, 5), (6, 6))

import pytest
import torch

from mmmixmae.models.utils.rel_pos import (get_relative_position_index, resize_rel_pos_table,
                                           window_from_table_length)
from mmmixmae.models.utils.windows import pad_to_multiple, window_partition, window_reverse


@pytest.mark.parametrize('h,w,win', [(8, 8, (4, 4)), (14, 28, (7, 7)), (6, 9, (3, 3))])
def test_partition_reverse_roundtrip(h, w, win):
    x = torch.randn(2, h, w, 5)
    windows = window_partition(x, win)
    assert windows.shape == (2 * (h // win[0]) * (w // win[1]), win[0] * win[1], 5)
    # first window of the first image is the top-left block, raster order inside
    assert torch.equal(windows[0].reshape(win[0], win[1], 5), x[0, :win[0], :win[1]])
    assert torch.equal(window_reverse(windows, win, h, w), x)


def test_pad_to_multiple():
    x = torch.ones(1, 5, 7, 2)
    y, ph, pw = pad_to_multiple(x, (4, 4))
    assert (ph, pw) == (3, 1) and y.shape == (1, 8, 8, 2)
    assert y[:, :5, :7].eq(1).all() and y[:, 5:].eq(0).all() and y[:, :, 7:].eq(0).all()


@pytest.mark.parametrize('win', [(2, 2), (7, 7), (3, 5)])
def test_relative_index_matches_offsets(win):
    idx = get_relative_position_index(win)
    n = win[0] * win[1]
    assert idx.shape == (n, n)
    coords = [(i // win[1], i % win[1]) for i in range(n)]
    table_w = 2 * win[1] - 1
    for a in range(n):
        for b in range(n):
            dy = coords[a][0] - coords[b][0]
            dx = coords[a][1] - coords[b][1]
            assert idx[a, b] == (dy + win[0] - 1) * table_w + dx + win[1] - 1
    # every table row is used: (2Wh-1)(2Ww-1) distinct offsets
    assert idx.unique().numel() == (2 * win[0] - 1) * (2 * win[1] - 1)


def test_resize_table():
    table = torch.randn(13 * 13, 3)
    assert resize_rel_pos_table(table, (7, 7), (7, 7)) is table
    big = resize_rel_pos_table(table, (7, 7), (12, 12))
    assert big.shape == (23 * 23, 3)
    # the centre (zero offset) of the table is preserved up to interpolation smoothing
    const = torch.full((13 * 13, 2), 0.5)
    assert torch.allclose(resize_rel_pos_table(const, (7, 7), (14, 14)), torch.full((27 * 27, 2), 0.5),
                          atol=1e-6)
    assert window_from_table_length(27 * 27) == 14
    with pytest.raises(ValueError):
        window_from_table_length(30)


@pytest.mark.parametrize('heads', [1, 4])
def test_take_bias_equals_advanced_index(heads):
    """take_bias: the same values and table gradient as autograd's ``table.reshape(-1)[idx]``,
    with indices repeated many times (every bias entry is read by many query/key pairs)."""
    from mmmixmae.models.utils.rel_pos import flat_bias_index, take_bias
    g = torch.Generator().manual_seed(0)
    table = torch.randn(13 * 13, heads, generator=g, dtype=torch.float64, requires_grad=True)
    rows = get_relative_position_index((7, 7))[torch.randperm(49, generator=g)[:30]]  # [30, 49]
    index = flat_bias_index(rows.view(3, 10, 49)[:, :, :10], heads)  # [3, heads, 10, 10]
    out = take_bias(table, index)
    ref = table.reshape(-1)[index]
    assert out.shape == index.shape == (3, heads, 10, 10)
    assert torch.equal(out, ref)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grad, = torch.autograd.grad((out * weights).sum(), table)
    grad_ref, = torch.autograd.grad((ref * weights).sum(), table)
    assert torch.allclose(grad, grad_ref, rtol=0, atol=1e-12)
    # entries no pair reads get exactly zero; each read entry gets the sum of its weights
    counts = torch.zeros(table.numel(), dtype=torch.long).index_add_(
        0, index.reshape(-1), torch.ones(index.numel(), dtype=torch.long))
    assert (grad.reshape(-1)[counts == 0] == 0).all() and (counts > 1).any()

"""Property tests (hypothesis) of MixMAE's building blocks: mixing masks, window partition,
relative-position index, mixing/unmixing and the isolation pattern of masked attention."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmixmae.models.utils.attention import WindowAttention, isolation_pattern
from mmmixmae.models.utils.mixing import (mix_tokens, random_mixing_mask, stage_masks,
                                          unmix_predictions)
from mmmixmae.models.utils.rel_pos import get_relative_position_index
from mmmixmae.models.utils.windows import pad_to_multiple, window_partition, window_reverse

FEW = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**31 - 1)


@FEW
@given(h=st.integers(1, 14), w=st.integers(1, 14), ratio=st.floats(0.0, 1.0), seed=seeds)
def test_mask_has_exactly_int_L_ratio_cells(h, w, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    mask = random_mixing_mask((h, w), ratio, generator=g)
    assert mask.shape == (1, 1, h, w) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert int(mask.sum()) == int(h * w * ratio)


@FEW
@given(h=st.integers(1, 8), w=st.integers(1, 8), ratio=st.floats(0.0, 0.8),
       extra=st.floats(0.0, 0.2), seed=seeds)
def test_mask_with_a_random_ratio_stays_within_its_range(h, w, ratio, extra, seed):
    import random
    random.seed(seed)
    mask = random_mixing_mask((h, w), ratio, extra, generator=torch.Generator().manual_seed(seed))
    assert int(h * w * ratio) <= int(mask.sum()) <= int(h * w * (ratio + extra))


@given(ratio=st.one_of(st.floats(-10, -1e-9), st.floats(1.0 + 1e-9, 10)))
@settings(max_examples=10, deadline=None)
def test_mask_ratio_outside_0_1_is_refused(ratio):
    with pytest.raises(ValueError, match='mixing ratio must lie in'):
        random_mixing_mask((2, 2), ratio)


@FEW
@given(h=st.integers(1, 6), w=st.integers(1, 6), stages=st.integers(1, 4),
       ratio=st.floats(0.0, 1.0), seed=seeds)
def test_stage_masks_nest(h, w, stages, ratio, seed):
    """The mask at each finer stage is the coarse mask with every cell split 2x2: the same
    tokens belong to the same image at every resolution, and the share is unchanged."""
    mask = random_mixing_mask((h, w), ratio, generator=torch.Generator().manual_seed(seed))
    grids = [(h << s, w << s) for s in reversed(range(stages))]  # finest first
    masks = stage_masks(mask, grids)
    for (gh, gw), m in zip(grids, masks):
        assert m.shape == (1, gh * gw, 1)
        assert float(m.mean()) == pytest.approx(int(h * w * ratio) / (h * w))
    for (fh, fw), fine, (ch, cw), coarse in zip(grids, masks, grids[1:], masks[1:]):
        f = fine.reshape(fh, fw)
        c = coarse.reshape(ch, cw)
        assert torch.equal(f, c.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert torch.equal(masks[-1].reshape(h, w), mask.reshape(h, w))


@FEW
@given(b=st.integers(1, 3), h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 4),
       wh=st.integers(1, 5), ww=st.integers(1, 5), seed=seeds)
def test_window_partition_and_reverse_are_inverses_for_any_padded_size(b, h, w, c, wh, ww,
                                                                        seed):
    x = torch.randn(b, h, w, c, generator=torch.Generator().manual_seed(seed))
    padded, ph, pw = pad_to_multiple(x, (wh, ww))
    hp, wp = h + ph, w + pw
    assert hp % wh == 0 and wp % ww == 0 and ph < wh and pw < ww
    assert torch.equal(padded[:, :h, :w], x) and not padded[:, h:].any() and \
        not padded[:, :, w:].any()
    windows = window_partition(padded, (wh, ww))
    nh, nw = hp // wh, wp // ww
    assert windows.shape == (b * nh * nw, wh * ww, c)
    # window k of image i holds rows r*wh.., cols s*ww.. in raster order
    k = (seed % b) * nh * nw + (seed // 7 % nh) * nw + seed // 11 % nw
    i, r, s = k // (nh * nw), k % (nh * nw) // nw, k % nw
    expected = padded[i, r * wh:(r + 1) * wh, s * ww:(s + 1) * ww].reshape(-1, c)
    assert torch.equal(windows[k], expected)
    assert torch.equal(window_reverse(windows, (wh, ww), hp, wp)[:, :h, :w], x)


@settings(max_examples=30, deadline=None)
@given(wh=st.integers(1, 9), ww=st.integers(1, 9))
def test_relative_position_index_is_a_bijection_onto_the_table(wh, ww):
    index = get_relative_position_index((wh, ww))
    n = wh * ww
    assert index.shape == (n, n) and index.dtype == torch.long
    pos = [(p // ww, p % ww) for p in range(n)]
    row_of = {}
    for i in range(n):
        for j in range(n):
            offset = (pos[i][0] - pos[j][0], pos[i][1] - pos[j][1])
            row = int(index[i, j])
            assert row_of.setdefault(offset, row) == row  # one row per offset
    rows = sorted(row_of.values())
    assert len(set(rows)) == len(row_of) == (2 * wh - 1) * (2 * ww - 1)  # unique rows
    assert rows == list(range((2 * wh - 1) * (2 * ww - 1)))  # every table row used


@FEW
@given(b=st.integers(1, 6), length=st.integers(1, 20), c=st.integers(1, 5),
       ratio=st.floats(0.0, 1.0), seed=seeds)
def test_mixing_then_unmixing_returns_both_originals(b, length, c, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, c, generator=g)
    mask = random_mixing_mask((1, length), ratio, generator=g).reshape(1, length, 1)
    mixed = mix_tokens(x, mask)
    m = mask.bool().expand(b, length, c)
    partner = x.flip(0)  # sample i's partner is B-1-i (odd B: the middle one is its own)
    assert torch.equal(mixed[m], partner[m]) and torch.equal(mixed[~m], x[~m])
    # the same mask separates the mixture again: every image comes back exactly
    assert torch.equal(mix_tokens(mixed, mask), x)
    # perfect per-branch predictions put together give each original image
    pred_own, pred_partner = x, x.flip(0)
    assert torch.equal(unmix_predictions(pred_own, pred_partner, mask), x)
    # ... and they are really taken from the branches the mask says
    assert torch.equal(unmix_predictions(pred_own, torch.zeros_like(x), mask),
                       x * mask)


@settings(max_examples=25, deadline=None)
@given(nh=st.integers(1, 3), nw=st.integers(1, 3), wh=st.integers(1, 4), ww=st.integers(1, 4),
       density=st.floats(0.0, 1.0), seed=seeds, fused=st.booleans())
def test_isolation_pattern_never_lets_the_two_images_attend_to_each_other(
        nh, nw, wh, ww, density, seed, fused):
    h, w = nh * wh, nw * ww
    rng = np.random.default_rng(seed)
    mask = torch.from_numpy((rng.random(h * w) < density).astype(np.float32)).reshape(1, -1, 1)
    pattern = isolation_pattern(mask, (h, w), (wh, ww))
    assert pattern.shape == (nh * nw, 1, wh * ww, wh * ww)
    grid = mask.reshape(h, w)
    for k in range(nh * nw):
        r, s = divmod(k, nw)
        m = grid[r * wh:(r + 1) * wh, s * ww:(s + 1) * ww].reshape(-1)
        differ = m[:, None] != m[None, :]
        assert torch.all(pattern[k, 0][differ] == float('-inf'))  # exactly -inf across
        assert torch.all(pattern[k, 0][~differ] == 0)  # exactly 0 within an image

    # behaviour: perturbing image-1 tokens leaves every image-0 output unchanged (and back)
    torch.manual_seed(seed)
    attn = WindowAttention(8, 2, (wh, ww), use_fused=fused).eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, h, w, 8, generator=g)
    noise = torch.randn(2, h, w, 8, generator=g)
    for owner in (0.0, 1.0):
        other = (grid != owner).reshape(1, h, w, 1).float()
        y = torch.stack([x, x + noise * other])
        with torch.no_grad():
            outs = [window_reverse(attn(window_partition(t, (wh, ww)), pattern), (wh, ww), h, w)
                    for t in y]
        keep = (grid == owner).reshape(1, h, w, 1).expand_as(outs[0])
        torch.testing.assert_close(outs[0][keep], outs[1][keep], rtol=0, atol=1e-6)

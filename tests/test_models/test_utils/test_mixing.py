import pytest
import torch

from mmmixmae.models.utils.mixing import (mix_tokens, num_mixed_cells, random_mixing_mask,
                                          stage_masks, unmix_predictions)


@pytest.mark.parametrize('grid,ratio,expected', [((7, 7), 0.5, 24), ((2, 2), 0.5, 2),
                                                 ((12, 12), 0.75, 108), ((3, 5), 0.0, 0),
                                                 ((3, 5), 1.0, 15)])
def test_exact_cell_count(grid, ratio, expected):
    torch.manual_seed(0)
    mask = random_mixing_mask(grid, ratio)
    assert mask.shape == (1, 1) + grid
    assert int(mask.sum()) == expected == num_mixed_cells(grid[0] * grid[1], ratio)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_masks_nest_across_stages():
    torch.manual_seed(1)
    mask = random_mixing_mask((7, 7), 0.5)
    grids = [(56, 56), (28, 28), (14, 14), (7, 7)]
    masks = stage_masks(mask, grids)
    for (h, w), m in zip(grids, masks):
        up = m.reshape(h, w)
        s = h // 7
        # every stride-32 cell is a constant s x s block equal to the cell's value
        blocks = up.reshape(7, s, 7, s).permute(0, 2, 1, 3).reshape(7, 7, s * s)
        assert torch.equal(blocks.amin(-1), mask[0, 0])
        assert torch.equal(blocks.amax(-1), mask[0, 0])
    # 2x2 merging of stage k gives stage k+1
    for k in range(3):
        h, w = grids[k]
        fine = masks[k].reshape(h // 2, 2, w // 2, 2).amax(dim=(1, 3)).reshape(1, -1, 1)
        assert torch.equal(fine, masks[k + 1])


def test_range_ratio_adds_cells():
    torch.manual_seed(0)
    counts = {int(random_mixing_mask((7, 7), 0.3, 0.4).sum()) for _ in range(40)}
    assert min(counts) >= 14 and max(counts) <= 34 and len(counts) > 3
    with pytest.raises(ValueError, match=r'must lie in \[0, 1\], got 1.5'):
        random_mixing_mask((7, 7), 1.5)


def test_mix_then_unmix_returns_both_originals():
    torch.manual_seed(0)
    x = torch.randn(5, 16, 3)
    mask = random_mixing_mask((4, 4), 0.5).reshape(1, 16, 1)
    mixed = mix_tokens(x, mask)
    # the own-image predictor sees the partner where mask==1 and vice versa: feeding the
    # "perfect predictions" back (own image in both branches, flipped for the partner)
    assert torch.equal(unmix_predictions(x, x.flip(0), mask), x)
    # sample i holds image i at mask 0 and image B-1-i at mask 1; odd batch: middle with itself
    assert torch.equal(mixed[1] * (1 - mask[0]), x[1] * (1 - mask[0]))
    assert torch.equal(mixed[1] * mask[0], x[3] * mask[0])
    assert torch.equal(mixed[2], x[2])

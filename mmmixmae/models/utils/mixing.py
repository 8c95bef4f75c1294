"""The MixMAE mixing mask: one random cell mask per batch on the stride-32 grid.

Convention: ``mask == 1`` marks a cell whose tokens sample ``i`` takes from its partner
``B - 1 - i``; ``mask == 0`` keeps its own tokens.
"""
import random
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def num_mixed_cells(num_cells: int, ratio: float) -> int:
    """Exactly ``int(L * ratio)`` cells, as the official code takes them."""
    return int(num_cells * ratio)


def random_mixing_mask(grid_hw: Tuple[int, int],
                       mask_ratio: float = 0.5,
                       range_mask_ratio: float = 0.0,
                       device: Optional[torch.device] = None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw the batch-shared mask.

    The ratio is ``mask_ratio + U(0, range_mask_ratio)``; the cells are the first
    ``int(L * ratio)`` of an argsort of uniform noise.  Without ``generator`` the ratio
    offset comes from Python's :mod:`random` and the noise from torch's global generator;
    with one, both come from ``generator`` (reproducible without touching global state).

    Returns:
        ``[1, 1, h, w]`` float tensor of 0/1.
    """
    h, w = grid_hw
    num_cells = h * w
    ratio = mask_ratio
    if range_mask_ratio > 0:  # with a generator, every draw comes from it
        offset = (random.uniform(0.0, 1.0) if generator is None else
                  float(torch.rand((), generator=generator)))
        ratio = ratio + offset * range_mask_ratio
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f'mixing ratio must lie in [0, 1], got {ratio} '
                         f'(mask_ratio={mask_ratio}, range_mask_ratio={range_mask_ratio})')
    noise = torch.rand(num_cells, generator=generator)
    chosen = torch.argsort(noise)[:num_mixed_cells(num_cells, ratio)]
    mask = torch.zeros(num_cells)
    mask[chosen] = 1.0
    return mask.view(1, 1, h, w).to(device)


def upsample_mask(mask: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
    """Nearest-upsample ``[1, 1, h, w]`` to ``grid_hw`` and flatten to ``[1, H*W, 1]``, in
    ``mask``'s floating dtype (0/1 are exact in every dtype; a bfloat16 model, e.g. DeepSpeed's
    ``bf16``, must not have its tokens promoted to float32 by the mixing)."""
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    up = F.interpolate(mask.float(), size=tuple(grid_hw), mode='nearest').to(dtype)
    return up.reshape(1, -1, 1)


def stage_masks(mask: torch.Tensor, grids: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, ...]:
    """The mask at each stage's resolution, each ``[1, H_k * W_k, 1]``."""
    return tuple(upsample_mask(mask, g) for g in grids)


def mix_tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x: [B, L, C]``, ``mask: [1, L, 1]``: sample i takes sample ``B-1-i`` where mask is 1."""
    return x * (1. - mask) + x.flip(0) * mask


def unmix_predictions(pred_own: torch.Tensor, pred_partner: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Put each image's two half-predictions back together.

    ``pred_own`` predicts image i where its mixed input held partner tokens (mask 1);
    ``pred_partner`` (of mixed sample i) predicts image ``B-1-i`` where mask is 0.
    """
    return pred_own * mask + pred_partner.flip(0) * (1. - mask)

"""Channel orders and position-table layouts that differ between checkpoint families.

* mmcv's ``PatchMerging`` gathers the 2x2 neighbours with ``nn.Unfold(2, 2)``, so its 4C
  features are ordered ``c * 4 + (dy * 2 + dx)``; ours (official / timm) concatenate the
  neighbours block-major, ``k * C + c`` with ``(dy, dx)`` = (0, 0), (1, 0), (0, 1), (1, 1)
  for k = 0..3.  :func:`unfold_to_block_major` permutes the LayerNorm weight/bias and the
  columns of the reduction accordingly.
* mmpretrain's ``build_2d_sincos_position_embedding`` puts the height coordinate in the
  first half of the channels, MAE/official the width.  The tables are nevertheless copied
  **verbatim** by the converters: they are parameters of the checkpoint and the other
  weights were trained with them, so only the verbatim table gives the same outputs
  (see ``tests/test_models/test_parity_mmpretrain.py``).  :func:`sincos_layout` names the
  layout for the report.
"""
from __future__ import annotations

import math

import torch

from ..models.utils.pos_embed import build_2d_sincos_pos_embed, swap_sincos_halves
from .errors import CheckpointConversionError

__all__ = ['BLOCK_ORDER', 'unfold_to_block_major', 'block_major_to_unfold', 'sincos_layout']

#: (dy, dx) of the four neighbours in our (official / timm) concatenation order
BLOCK_ORDER = ((0, 0), (1, 0), (0, 1), (1, 1))


def _unfold_index(channels4: int) -> torch.Tensor:
    """For every position of our layout, its position in mmcv's ``nn.Unfold`` layout."""
    if channels4 % 4:
        raise CheckpointConversionError(f'patch merging width {channels4} is not a multiple of 4')
    c = channels4 // 4
    return torch.tensor([ch * 4 + dy * 2 + dx for dy, dx in BLOCK_ORDER for ch in range(c)])


def unfold_to_block_major(t: torch.Tensor) -> torch.Tensor:
    """Reorder the last dimension (4C) from mmcv's Unfold order to ours."""
    return t[..., _unfold_index(t.shape[-1])].contiguous()


def block_major_to_unfold(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unfold_to_block_major`."""
    out = torch.empty_like(t)
    out[..., _unfold_index(t.shape[-1])] = t
    return out


def sincos_layout(table: torch.Tensor, atol: float = 1e-4) -> str:
    """Name the layout of a square ``[1, L, C]`` position table.

    ``'mae'`` (width first, official/ours), ``'mmpretrain'`` (height first),
    ``'zeros'`` or ``'other'`` (learned, interpolated or not a sin-cos table).
    """
    side = math.isqrt(int(table.shape[1]))
    if table.dim() != 3 or side * side != table.shape[1] or table.shape[-1] % 4:
        return 'other'
    if not table.any():
        return 'zeros'
    ref = build_2d_sincos_pos_embed(int(table.shape[-1]), side).to(table.dtype)
    if torch.allclose(table.float(), ref.float(), atol=atol):
        return 'mae'
    if torch.allclose(table.float(), swap_sincos_halves(ref).float(), atol=atol):
        return 'mmpretrain'
    return 'other'

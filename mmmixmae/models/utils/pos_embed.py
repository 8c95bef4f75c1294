"""Fixed 2-D sine-cosine position embeddings (MAE layout) and their resizing.

The MAE / official MixMIM layout puts the *width* coordinate into the first half of the
channels and the *height* coordinate into the second half; inside each half the sines come
before the cosines.  mmpretrain's ``build_2d_sincos_position_embedding`` swaps the two halves,
which matters when weights are moved between the two code bases.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F


def sincos_1d(embed_dim: int, pos: torch.Tensor, temperature: float = 10000.) -> torch.Tensor:
    """``pos: [M]`` -> ``[M, embed_dim]`` as ``[sin(pos * w_k), cos(pos * w_k)]``."""
    if embed_dim % 2:
        raise ValueError(f'1-D sin-cos embedding needs an even dimension, got {embed_dim}')
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.)
    omega = 1. / temperature**omega
    out = pos.double().reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([out.sin(), out.cos()], dim=1)


def build_2d_sincos_pos_embed(embed_dim: int,
                              grid_size: Union[int, Sequence[int]]) -> torch.Tensor:
    """MAE's 2-D sin-cos table.

    Args:
        embed_dim: channels, a multiple of 4.
        grid_size: ``h`` or ``(h, w)`` of the token grid.

    Returns:
        ``[1, h * w, embed_dim]`` float32, rows in raster order; channels
        ``[:embed_dim // 2]`` encode the column (width) index, the rest the row index.
    """
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
    if embed_dim % 4:
        raise ValueError(f'2-D sin-cos embedding needs a multiple of 4 channels, got {embed_dim}')
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    emb_w = sincos_1d(embed_dim // 2, cols.reshape(-1))
    emb_h = sincos_1d(embed_dim // 2, rows.reshape(-1))
    return torch.cat([emb_w, emb_h], dim=1).float().unsqueeze(0)


def swap_sincos_halves(pos_embed: torch.Tensor) -> torch.Tensor:
    """Convert between the MAE layout and mmpretrain's (height half first). ``[..., C]``."""
    half = pos_embed.shape[-1] // 2
    return torch.cat([pos_embed[..., half:], pos_embed[..., :half]], dim=-1)


def resize_pos_embed(pos_embed: torch.Tensor, src_hw: Tuple[int, int],
                     dst_hw: Tuple[int, int], mode: str = 'bicubic') -> torch.Tensor:
    """Interpolate an absolute embedding ``[1, Hs*Ws, C]`` to ``[1, Hd*Wd, C]``."""
    src_hw, dst_hw = tuple(src_hw), tuple(dst_hw)
    if src_hw == dst_hw:
        return pos_embed
    n, length, c = pos_embed.shape
    if length != src_hw[0] * src_hw[1]:
        raise ValueError(f'position embedding has {length} tokens, not {src_hw[0]}x{src_hw[1]}')
    grid = pos_embed.reshape(n, src_hw[0], src_hw[1], c).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=dst_hw, mode=mode, align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(n, dst_hw[0] * dst_hw[1], c).to(pos_embed.dtype)

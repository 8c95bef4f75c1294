"""Swin relative position bias: index construction and table resizing."""
from typing import Tuple

import torch
import torch.nn.functional as F


def get_relative_position_index(window_size: Tuple[int, int]) -> torch.Tensor:
    """Index into a ``[(2Wh-1)*(2Ww-1), nH]`` table for every query/key pair of a window.

    Returns:
        ``[Wh*Ww, Wh*Ww]`` long tensor; entry ``(i, j)`` is
        ``(dy + Wh - 1) * (2Ww - 1) + (dx + Ww - 1)`` with ``(dy, dx)`` = pos(i) - pos(j).
    """
    wh, ww = window_size
    rows, cols = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')
    coords = torch.stack([rows.reshape(-1), cols.reshape(-1)])  # [2, N]
    rel = coords[:, :, None] - coords[:, None, :]  # [2, N, N]
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def table_shape(window_size: Tuple[int, int]) -> Tuple[int, int]:
    return 2 * window_size[0] - 1, 2 * window_size[1] - 1


def resize_rel_pos_table(table: torch.Tensor, src_window: Tuple[int, int],
                         dst_window: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resize a bias table ``[(2Hs-1)*(2Ws-1), nH]`` to another window size."""
    src_shape, dst_shape = table_shape(tuple(src_window)), table_shape(tuple(dst_window))
    if src_shape == dst_shape:
        return table
    length, heads = table.shape
    if length != src_shape[0] * src_shape[1]:
        raise ValueError(f'relative position table has {length} rows, '
                         f'not {src_shape[0]}x{src_shape[1]} for window {tuple(src_window)}')
    grid = table.t().reshape(1, heads, *src_shape).float()
    grid = F.interpolate(grid, size=dst_shape, mode='bicubic', align_corners=False)
    return grid.reshape(heads, -1).t().contiguous().to(table.dtype)


def window_from_table_length(length: int) -> int:
    """Square window whose table has ``length`` rows, i.e. ``(2w-1)^2 == length``."""
    side = round(length**0.5)
    if side * side != length or side % 2 == 0:
        raise ValueError(f'{length} rows is not the table of a square window')
    return (side + 1) // 2

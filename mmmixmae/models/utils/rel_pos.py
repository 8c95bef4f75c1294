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


def flat_bias_index(index: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[..., N, N]`` table rows -> ``[..., nH, N, N]`` indices into the flattened ``[T, nH]``
    table (the layout of the attention scores)."""
    heads = torch.arange(num_heads, device=index.device).view(-1, 1, 1)
    return index.unsqueeze(-3) * num_heads + heads


class _TakeFlat(torch.autograd.Function):
    """``table.reshape(-1)[index]`` as ``index_select``, with a ``scatter_add_`` backward.

    On the CPU both are 2-3x faster than what autograd does for an advanced index: its forward
    (``aten::index``) goes through the generic indexing iterator, and its backward is an
    accumulating ``index_put_`` that runs element by element (``index_add_``, used before, was
    about as slow as the forward). The bias gathers of MixMAE-B read hundreds of thousands of
    entries per block. Both kernels run through the index in order, so the result and the
    gradient do not depend on the thread count.
    """

    @staticmethod
    def forward(ctx, table, index):
        ctx.save_for_backward(index)
        ctx.shape = table.shape
        flat_index = index.reshape(-1)
        return torch.index_select(table.reshape(-1), 0, flat_index).view(index.shape)

    @staticmethod
    def backward(ctx, grad):
        index, = ctx.saved_tensors
        numel = 1
        for n in ctx.shape:
            numel *= n
        out = grad.new_zeros(numel).scatter_add_(0, index.reshape(-1), grad.reshape(-1))
        return out.view(ctx.shape), None


def take_bias(table: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Entries of ``table`` (any shape, read flattened) at ``flat_index`` (same shape out).

    Args:
        table: ``[(2Wh-1)*(2Ww-1), nH]`` relative-bias table.
        flat_index: long indices into ``table.reshape(-1)``, e.g. ``row * nH + head``.
    """
    return _TakeFlat.apply(table, flat_index)

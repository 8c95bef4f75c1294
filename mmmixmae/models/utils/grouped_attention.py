"""Isolation-aware window attention: scores and values only inside each image's group.

The MixMAE mixing mask is shared by the whole batch, so inside every window the tokens split
into the same two groups for every sample: those of the sample's own image (mask 0) and those
of its partner (mask 1).  The dense path computes the full ``N x N`` scores and throws the
cross-image half away with ``-inf``; this path computes attention within each group only.

Per stage (once per step, shared by all blocks of the stage) a :class:`GroupPlan` is built:

* every non-empty group of every window is a *piece* (a window with one group has one piece
  of ``N`` tokens, a ratio of 0 or 1 gives only such pieces);
* pieces are sorted by size and put into *buckets*; a bucket has one slot size ``P`` (its
  largest piece) and takes further pieces while padding them to ``P`` costs at most
  ``pad_tol`` more attention work than their exact size (``P^2 <= (1 + pad_tol) n^2``);
* padded key slots get ``-inf`` (they receive exactly zero weight, in every dtype); padded
  query slots point at a real token and their outputs are dropped;
* the relative-position-bias index of every slot pair is composed once per stage, so each
  block does one table gather for all buckets.

Per block the tokens are gathered straight from the ``[B, H*W]`` grid into the slots (no
window partition), attention runs per bucket as batched ``[B, K, nH, P, P]`` products, and
one inverse gather puts the outputs back in grid order.  The result equals the dense masked
path up to floating-point rounding.
"""
from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.nn.functional as F

from .windows import window_partition


@dataclass
class Bucket:
    """Pieces of one slot size ``P``.

    Attributes:
        src: ``[K * P]`` long, grid index (into ``H*W``) of the token in each slot.
        bias_index: ``[K * P * P]`` long, row of the relative-bias table for each slot pair.
        key_pad: ``[K, 1, 1, P]`` float, 0 for real keys and ``-inf`` for padded key slots
            (or None when no piece of the bucket is padded).
        num_pieces: ``K``.
        size: ``P``.
    """
    src: torch.Tensor
    bias_index: torch.Tensor
    key_pad: 'torch.Tensor | None'
    num_pieces: int
    size: int


@dataclass
class GroupPlan:
    """Everything a stage's blocks need for grouped attention.

    Attributes:
        buckets: the buckets, largest slot size first.
        inverse: ``[H*W]`` long, position in the concatenated slots of each grid token.
        src: ``[sum K*P]`` all buckets' slot sources, concatenated (one gather per block).
        bias_index: ``[sum K*P*P]`` all buckets' bias indices, concatenated.
        num_tokens: ``H*W``.
        window_tokens: ``N = Wh*Ww``.
        num_windows: ``nW``.
        piece_sizes: exact size of every piece.
    """
    buckets: List[Bucket]
    inverse: torch.Tensor
    src: torch.Tensor
    bias_index: torch.Tensor
    num_tokens: int
    window_tokens: int
    num_windows: int
    piece_sizes: Tuple[int, ...]

    def work(self) -> Tuple[int, int]:
        """``(grouped, dense)`` score entries per image and head: ``sum K P^2``, ``nW N^2``."""
        grouped = sum(b.num_pieces * b.size**2 for b in self.buckets)
        return grouped, self.num_windows * self.window_tokens**2

    def exact_work(self) -> int:
        """Score-matrix entries with exact piece sizes and no padding (the ideal)."""
        return sum(n * n for n in self.piece_sizes)


def _buckets_from_sizes(sizes: List[int], pad_tol: float) -> List[List[int]]:
    """Group piece ids (sorted by size, descending) into buckets; returns lists of piece ids."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    buckets: List[List[int]] = []
    for i in order:
        if buckets and sizes[buckets[-1][0]]**2 <= (1. + pad_tol) * sizes[i]**2:
            buckets[-1].append(i)
        else:
            buckets.append([i])
    return buckets


def build_group_plan(mask: torch.Tensor, hw: Tuple[int, int], window_size: Tuple[int, int],
                     rel_index: torch.Tensor, pad_tol: float = 0.1) -> GroupPlan:
    """Build the grouped-attention plan of one stage.

    Args:
        mask: ``[1, H*W, 1]`` 0/1 mixing mask at this stage's resolution (``H, W`` divisible
            by the window).
        hw: ``(H, W)``.
        window_size: ``(Wh, Ww)``.
        rel_index: ``[N, N]`` long relative-position index of the window.
        pad_tol: at most this much extra attention work from padding a piece into a bucket.

    Returns:
        the :class:`GroupPlan` (its tensors live on ``mask``'s device).
    """
    h, w = hw
    if h % window_size[0] or w % window_size[1]:
        raise ValueError(f'grouped attention: window {window_size} does not divide the grid {hw}')
    if mask.numel() != h * w:
        raise ValueError(f'grouped attention: mask has {mask.numel()} entries, '
                         f'grid {hw} has {h * w}')
    if pad_tol < 0:
        raise ValueError(f'grouped attention: pad_tol must be >= 0, got {pad_tol}')
    device = mask.device
    n = window_size[0] * window_size[1]
    grid_index = torch.arange(h * w, device=device, dtype=torch.float64).reshape(1, h, w, 1)
    win_tokens = window_partition(grid_index, window_size)[..., 0].long().cpu()  # [nW, N]
    win_mask = window_partition(mask.reshape(1, h, w, 1), window_size)[..., 0].cpu() > 0.5
    pieces: List[torch.Tensor] = []  # local (in-window) positions of each piece
    piece_window: List[int] = []
    for wi in range(win_tokens.shape[0]):
        for group in (~win_mask[wi], win_mask[wi]):
            local = group.nonzero().flatten()
            if local.numel():
                pieces.append(local)
                piece_window.append(wi)
    sizes = [p.numel() for p in pieces]
    buckets: List[Bucket] = []
    inverse = torch.empty(h * w, dtype=torch.long)
    offset = 0
    rel_index = rel_index.cpu()
    for ids in _buckets_from_sizes(sizes, pad_tol):
        size = sizes[ids[0]]
        local = torch.zeros(len(ids), size, dtype=torch.long)
        valid = torch.zeros(len(ids), size, dtype=torch.bool)
        for k, i in enumerate(ids):
            local[k, :sizes[i]] = pieces[i]
            local[k, sizes[i]:] = pieces[i][0]  # a real token; its key is masked, query dropped
            valid[k, :sizes[i]] = True
        windows = torch.tensor([piece_window[i] for i in ids])
        src = win_tokens[windows[:, None], local]  # [K, P]
        slot = offset + torch.arange(len(ids) * size).reshape(len(ids), size)
        inverse[src[valid]] = slot[valid]
        offset += len(ids) * size
        bias_index = rel_index[local[:, :, None], local[:, None, :]]  # [K, P, P]
        key_pad = None
        if not bool(valid.all()):
            key_pad = torch.zeros(len(ids), 1, 1, size)
            key_pad.masked_fill_(~valid[:, None, None, :], float('-inf'))
            key_pad = key_pad.to(device)
        buckets.append(Bucket(src.reshape(-1).to(device), bias_index.reshape(-1).to(device),
                              key_pad, len(ids), size))
    return GroupPlan(buckets, inverse.to(device), torch.cat([b.src for b in buckets]),
                     torch.cat([b.bias_index for b in buckets]),
                     h * w, n, win_tokens.shape[0], tuple(sizes))


def grouped_attention(qkv: torch.Tensor, plan: GroupPlan, bias_table: torch.Tensor,
                      num_heads: int, scale: float, attn_drop: float = 0.,
                      training: bool = False) -> torch.Tensor:
    """Attention within each group of each window.

    Args:
        qkv: ``[B, H*W, 3 * C]`` projected tokens in grid (raster) order.
        plan: the stage's :class:`GroupPlan`.
        bias_table: ``[(2Wh-1)*(2Ww-1), nH]`` relative-bias table of this block.
        num_heads: ``nH``.
        scale: ``head_dim ** -0.5``.

    Returns:
        ``[B, H*W, C]`` attention outputs (before the output projection), grid order.
    """
    b, length, c3 = qkv.shape
    if length != plan.num_tokens:
        raise ValueError(f'grouped attention: {length} tokens, the plan was built for '
                         f'{plan.num_tokens}')
    d = c3 // (3 * num_heads)
    # one gather each per block for all buckets (a gather per bucket would make autograd
    # allocate and accumulate a full-size gradient per bucket)
    # split (not slices): its backward concatenates instead of zero-filling per bucket
    sizes = [bk.num_pieces * bk.size for bk in plan.buckets]
    bias_parts = bias_table[plan.bias_index].split([n * bk.size for n, bk in
                                                    zip(sizes, plan.buckets)])
    slot_parts = qkv[:, plan.src].split(sizes, dim=1)  # [B, K*P, 3C] each
    outs = []
    for bucket, bias, t in zip(plan.buckets, bias_parts, slot_parts):
        k_, p = bucket.num_pieces, bucket.size
        bias = bias.view(k_, p, p, num_heads).permute(0, 3, 1, 2)
        if bucket.key_pad is not None:
            bias = bias + bucket.key_pad
        t = t.view(b, k_, p, 3, num_heads, d).permute(3, 0, 1, 4, 2, 5)
        q, k, v = t.unbind(0)  # [B, K, nH, P, d]
        attn = torch.matmul(q, k.transpose(-2, -1))
        attn.mul_(scale).add_(bias.to(attn.dtype))
        attn = attn.softmax(dim=-1)
        attn = F.dropout(attn, attn_drop, training=training)
        out = torch.matmul(attn, v)  # [B, K, nH, P, d]
        outs.append(out.permute(0, 1, 3, 2, 4).reshape(b, k_ * p, num_heads * d))
    slots = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
    return slots[:, plan.inverse]

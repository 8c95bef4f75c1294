"""Isolation-aware window attention: scores and values only inside each image's group.

The MixMAE mixing mask is shared by the whole batch, so inside every window the tokens split
into the same two groups for every sample: those of the sample's own image (mask 0) and those
of its partner (mask 1).  The dense path computes the full ``N x N`` scores and throws the
cross-image half away with ``-inf``; this path computes attention within each group only.

Per stage (once per step, shared by all blocks of the stage) a :class:`GroupPlan` lays the
stage's tokens out in *slot order*:

* every non-empty group of every window is a *piece* (a window with one group has one piece
  of ``N`` tokens, a ratio of 0 or 1 gives only such pieces);
* pieces are sorted by size and put into *buckets*; a bucket has one slot size ``P`` (its
  largest piece) and takes further pieces while padding them to ``P`` costs at most
  ``pad_tol`` more attention work than their exact size (``P^2 <= (1 + pad_tol) n^2``);
  ``pad_tol=0`` (the default) gives exact buckets: the slot order is then a permutation of
  the grid and nothing is padded;
* the slots are contiguous: bucket after bucket, piece after piece, so the ``[B, K, P]``
  tokens of a bucket are a plain view of the stage's ``[B, S, C]`` tensor.

The stage permutes its tokens into slot order once on entry (:func:`to_slots`) and back once
on exit (:func:`from_slots`); the blocks in between run LayerNorm, projections and MLPs on the
slot layout as on any token order, and their attention (:func:`grouped_attention`) needs no
window partition, no gather and no mask: one batched product per bucket, with the relative
bias of every slot pair gathered from the table in the ``[K, nH, P, P]`` layout of the scores.

Padded slots (only with ``pad_tol > 0``) repeat a real token of their piece; as keys they get
``-inf`` (exactly zero weight, in every dtype), their outputs are never read, and so their
gradient is exactly zero all through the stage.  That is what lets :func:`to_slots` run its
backward as a plain inverse gather.  The result equals the dense masked path up to
floating-point rounding.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from .rel_pos import flat_bias_index, take_bias
from .windows import window_partition


@dataclass
class Bucket:
    """Pieces of one slot size ``P``, stored at slots ``[start, start + K * P)``.

    Attributes:
        start: first slot of the bucket.
        num_pieces: ``K``.
        size: ``P``.
        key_pad: ``[K, 1, 1, P]`` float, 0 for real keys and ``-inf`` for padded key slots
            (None when no piece of the bucket is padded).
    """
    start: int
    num_pieces: int
    size: int
    key_pad: Optional[torch.Tensor]


@dataclass
class GroupPlan:
    """Everything a stage's blocks need for grouped attention.

    Attributes:
        buckets: the buckets, largest slot size first, in slot order.
        src: ``[S]`` long, grid index (into ``H*W``) of the token in each slot.
        inverse: ``[H*W]`` long, slot of each grid token (``src[inverse] == arange(H*W)``).
        pad_slots: ``[S - H*W]`` long slots that hold padding (None when there is none).
        rel_index: ``[sum K*P*P]`` long, in-window relative position of every slot pair,
            bucket after bucket in ``[K, P, P]`` order (padded keys point at a real one).
        num_tokens: ``H*W``.
        window_tokens: ``N = Wh*Ww``.
        num_windows: ``nW``.
        piece_sizes: exact size of every piece.
    """
    buckets: List[Bucket]
    src: torch.Tensor
    inverse: torch.Tensor
    pad_slots: Optional[torch.Tensor]
    rel_index: torch.Tensor
    num_tokens: int
    window_tokens: int
    num_windows: int
    piece_sizes: Tuple[int, ...]

    @property
    def num_slots(self) -> int:
        """``S = sum K * P`` (``H*W`` when nothing is padded)."""
        return int(self.src.numel())

    def work(self) -> Tuple[int, int]:
        """``(grouped, dense)`` score entries per image and head: ``sum K P^2``, ``nW N^2``."""
        grouped = sum(b.num_pieces * b.size**2 for b in self.buckets)
        return grouped, self.num_windows * self.window_tokens**2

    def exact_work(self) -> int:
        """Score-matrix entries with exact piece sizes and no padding (the ideal)."""
        return sum(n * n for n in self.piece_sizes)

    def bias_index(self, num_heads: int) -> torch.Tensor:
        """``[sum K*nH*P*P]`` rows of a flattened ``[T, nH]`` bias table, in score layout.

        Cached per head count: every block of a stage has the same number of heads.
        """
        cache = self.__dict__.setdefault('_bias_index', {})
        if num_heads not in cache:
            parts, offset = [], 0
            for b in self.buckets:
                n = b.num_pieces * b.size * b.size
                rel = self.rel_index[offset:offset + n].view(b.num_pieces, b.size, b.size)
                parts.append(flat_bias_index(rel, num_heads).reshape(-1))
                offset += n
            cache[num_heads] = torch.cat(parts)
        return cache[num_heads]


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


def _pieces(mask: torch.Tensor, hw: Tuple[int, int],
            window_size: Tuple[int, int]) -> Tuple[torch.Tensor, List[torch.Tensor], List[int]]:
    """``(win_tokens [nW, N], in-window positions of each piece, window of each piece)``."""
    h, w = hw
    grid_index = torch.arange(h * w, dtype=torch.float64).reshape(1, h, w, 1)
    win_tokens = window_partition(grid_index, window_size)[..., 0].long()  # [nW, N]
    win_mask = window_partition(mask.detach().reshape(1, h, w, 1).cpu(),
                                window_size)[..., 0] > 0.5
    pieces: List[torch.Tensor] = []
    piece_window: List[int] = []
    for wi in range(win_tokens.shape[0]):
        for group in (~win_mask[wi], win_mask[wi]):
            local = group.nonzero().flatten()
            if local.numel():
                pieces.append(local)
                piece_window.append(wi)
    return win_tokens, pieces, piece_window


def build_group_plan(mask: torch.Tensor, hw: Tuple[int, int], window_size: Tuple[int, int],
                     rel_index: torch.Tensor, pad_tol: float = 0.) -> GroupPlan:
    """Build the grouped-attention plan of one stage.

    Args:
        mask: ``[1, H*W, 1]`` 0/1 mixing mask at this stage's resolution (``H, W`` divisible
            by the window).
        hw: ``(H, W)``.
        window_size: ``(Wh, Ww)``.
        rel_index: ``[N, N]`` long relative-position index of the window.
        pad_tol: at most this much extra attention work from padding a piece into a bucket
            (0: exact buckets, a pure permutation of the tokens).

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
    win_tokens, pieces, piece_window = _pieces(mask, hw, window_size)
    sizes = [p.numel() for p in pieces]
    rel_index = rel_index.cpu()
    buckets: List[Bucket] = []
    srcs, rels, pads = [], [], []
    offset = 0
    for ids in _buckets_from_sizes(sizes, pad_tol):
        size, k = sizes[ids[0]], len(ids)
        local = torch.zeros(k, size, dtype=torch.long)
        valid = torch.zeros(k, size, dtype=torch.bool)
        for j, i in enumerate(ids):
            local[j, :sizes[i]] = pieces[i]
            local[j, sizes[i]:] = pieces[i][0]  # a real token; its key is masked, query unread
            valid[j, :sizes[i]] = True
        windows = torch.tensor([piece_window[i] for i in ids])
        srcs.append(win_tokens[windows[:, None], local].reshape(-1))  # [K*P]
        rels.append(rel_index[local[:, :, None], local[:, None, :]].reshape(-1))  # [K*P*P]
        key_pad = None
        if not bool(valid.all()):
            key_pad = torch.zeros(k, 1, 1, size).masked_fill_(~valid[:, None, None, :],
                                                               float('-inf')).to(device)
            pads.append(offset + (~valid.reshape(-1)).nonzero().flatten())
        buckets.append(Bucket(offset, k, size, key_pad))
        offset += k * size
    src = torch.cat(srcs)
    is_pad = torch.zeros(offset, dtype=torch.bool)
    if pads:
        is_pad[torch.cat(pads)] = True
    inverse = torch.empty(h * w, dtype=torch.long)
    inverse[src[~is_pad]] = (~is_pad).nonzero().flatten()
    return GroupPlan(buckets, src.to(device), inverse.to(device),
                     torch.cat(pads).to(device) if pads else None, torch.cat(rels).to(device),
                     h * w, window_size[0] * window_size[1], win_tokens.shape[0], tuple(sizes))


class _Permute(torch.autograd.Function):
    """``x[:, index]`` whose backward is the gather ``grad[:, back]`` (then ``zero`` cleared).

    Exact where every slot of ``x`` the forward drops (or duplicates) gets a zero gradient.
    """

    @staticmethod
    def forward(ctx, x, index, back, zero):
        ctx.save_for_backward(back, zero)
        ctx.has_zero = zero is not None
        return x.index_select(1, index)

    @staticmethod
    def backward(ctx, grad):
        back, zero = ctx.saved_tensors
        out = grad.index_select(1, back)
        if ctx.has_zero:
            out.index_fill_(1, zero, 0.)
        return out, None, None, None


def to_slots(x: torch.Tensor, plan: GroupPlan) -> torch.Tensor:
    """``[B, H*W, C]`` grid order -> ``[B, S, C]`` slot order (the stage's entry)."""
    if x.shape[1] != plan.num_tokens:
        raise ValueError(f'grouped attention: {x.shape[1]} tokens, the plan was built for '
                         f'{plan.num_tokens}')
    # padded slots carry an exactly zero gradient (see the module docstring)
    return _Permute.apply(x, plan.src, plan.inverse, None)


def from_slots(x: torch.Tensor, plan: GroupPlan) -> torch.Tensor:
    """``[B, S, C]`` slot order -> ``[B, H*W, C]`` grid order (the stage's exit)."""
    if x.shape[1] != plan.num_slots:
        raise ValueError(f'grouped attention: {x.shape[1]} slots, the plan has '
                         f'{plan.num_slots}')
    return _Permute.apply(x, plan.inverse, plan.src, plan.pad_slots)


class _BucketHeads(torch.autograd.Function):
    """``qkv [B, S, 3C]`` -> ``(q, k, v)`` of every bucket, ``[B, K, nH, P, d]`` strided views.

    The backward writes each piece's ``dq``, ``dk``, ``dv`` straight into one ``[B, S, 3C]``
    gradient (the buckets cover every slot exactly once), in one pass; autograd's own chain
    (``unbind`` -> ``stack``, ``view`` of a permuted gradient -> copy, ``split`` -> ``cat``)
    copies the whole ``qkv`` gradient three times.
    """

    @staticmethod
    def forward(ctx, qkv, shapes, num_heads):
        ctx.shapes, ctx.num_heads, ctx.qkv_shape = shapes, num_heads, qkv.shape
        return _bucket_heads(qkv, shapes, num_heads)

    @staticmethod
    def backward(ctx, *grads):
        grad = grads[0].new_empty(ctx.qkv_shape)
        for i, view in enumerate(_bucket_views(grad, ctx.shapes, ctx.num_heads)):
            for j in range(3):
                view[j].copy_(grads[3 * i + j])
        return grad, None, None


def _bucket_heads(qkv: torch.Tensor, shapes, num_heads: int) -> tuple:
    """``(q, k, v)`` of every bucket, in order: ``[B, K, nH, P, d]`` views of ``qkv``."""
    return tuple(t for view in _bucket_views(qkv, shapes, num_heads) for t in view.unbind(0))


def _bucket_views(qkv: torch.Tensor, shapes, num_heads: int):
    """Per bucket ``(K, P)``: ``[3, B, K, nH, P, d]`` view of its slots of ``qkv [B, S, 3C]``."""
    b, _, c3 = qkv.shape
    d = c3 // (3 * num_heads)
    start = 0
    for k_, p in shapes:
        yield qkv[:, start:start + k_ * p].view(b, k_, p, 3, num_heads, d).permute(
            3, 0, 1, 4, 2, 5)
        start += k_ * p


class _MergeHeads(torch.autograd.Function):
    """Per-bucket outputs ``[B, K, nH, P, d]`` -> ``[B, S, nH * d]`` in slot order, one copy
    each (in place of a permuted reshape and a ``cat``); the backward hands out views."""

    @staticmethod
    def forward(ctx, shapes, *outs):
        ctx.shapes, ctx.num_heads = shapes, outs[0].shape[2]
        return _merge_heads(shapes, outs)

    @staticmethod
    def backward(ctx, grad):
        return (None, ) + tuple(_merged_views(grad.contiguous(), ctx.shapes, ctx.num_heads))


def _merge_heads(shapes, outs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-bucket ``[B, K, nH, P, d]`` -> ``[B, S, nH * d]`` in slot order, one copy each."""
    b, _, num_heads, _, d = outs[0].shape
    merged = outs[0].new_empty(b, sum(k_ * p for k_, p in shapes), num_heads * d)
    for view, out in zip(_merged_views(merged, shapes, num_heads), outs):
        view.copy_(out)
    return merged


def _merged_views(merged: torch.Tensor, shapes, num_heads: int):
    """Per bucket ``(K, P)``: ``[B, K, nH, P, d]`` view of its slots of ``merged [B, S, C]``."""
    b, _, c = merged.shape
    start = 0
    for k_, p in shapes:
        yield merged[:, start:start + k_ * p].view(b, k_, p, num_heads, c // num_heads).permute(
            0, 1, 3, 2, 4)
        start += k_ * p


def grouped_attention(qkv: torch.Tensor, plan: GroupPlan, bias_table: torch.Tensor,
                      num_heads: int, scale: float, attn_drop: float = 0.,
                      training: bool = False) -> torch.Tensor:
    """Attention within each group of each window.

    Args:
        qkv: ``[B, S, 3 * C]`` projected tokens in slot order.
        plan: the stage's :class:`GroupPlan`.
        bias_table: ``[(2Wh-1)*(2Ww-1), nH]`` relative-bias table of this block.
        num_heads: ``nH``.
        scale: ``head_dim ** -0.5``.

    Returns:
        ``[B, S, C]`` attention outputs (before the output projection), slot order.
    """
    slots = qkv.shape[1]
    if slots != plan.num_slots:
        raise ValueError(f'grouped attention: {slots} slots, the plan has {plan.num_slots}')
    shapes = tuple((bk.num_pieces, bk.size) for bk in plan.buckets)
    # one gather per block for all buckets, straight into the [K, nH, P, P] score layout
    bias = take_bias(bias_table, plan.bias_index(num_heads))
    bias_parts = bias.split([k_ * num_heads * p * p for k_, p in shapes])
    # the JIT tracer (FLOP counting, get_flops.py) cannot record these functions' view outputs:
    # it traces their forward code as plain ops (autograd's own backward)
    tracing = torch.jit.is_tracing()
    if tracing:
        qkvs = _bucket_heads(qkv, shapes, num_heads)
    else:
        qkvs = _BucketHeads.apply(qkv, shapes, num_heads)
    outs = []
    for i, (bucket, bias) in enumerate(zip(plan.buckets, bias_parts)):
        k_, p = bucket.num_pieces, bucket.size
        bias = bias.view(k_, num_heads, p, p)
        if bucket.key_pad is not None:
            bias = bias + bucket.key_pad
        q, k, v = qkvs[3 * i:3 * i + 3]  # [B, K, nH, P, d]
        # scaling q (P x d) is cheaper than scaling the scores (P x P); in place: the product
        # itself is not needed by matmul's backward
        attn = torch.matmul(q * scale, k.transpose(-2, -1))
        attn = attn.add_(bias.to(attn.dtype)).softmax(dim=-1)
        if attn_drop and training:
            attn = torch.nn.functional.dropout(attn, attn_drop, training=True)
        outs.append(torch.matmul(attn, v))  # [B, K, nH, P, d]
    if tracing:
        return _merge_heads(shapes, outs)
    return _MergeHeads.apply(shapes, *outs)

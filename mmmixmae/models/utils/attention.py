"""Window attention with Swin relative position bias and an exact isolation mask.

Two paths compute the same function:

* the *fused* path hands everything to ``F.scaled_dot_product_attention`` with the
  relative bias and the isolation/shift pattern folded into one additive mask;
* the *reference* path spells out ``softmax(q k^T * scale + bias + pattern) v``.

``use_fused='auto'`` (the default of the backbone) picks per call: the fused kernel on
accelerators and whenever no gradient is needed (CPU flash attention, about 3x faster than the
reference path in inference), the reference path for CPU training (torch's CPU kernels fall
back to an unfused "math" implementation when the additive mask needs a gradient, which was
1.5-1.8x slower than the reference path here; see docs/en/benchmarks.md).

Masking uses ``-inf`` (not a large finite number): ``exp(-inf) == 0`` in every dtype, so a
token receives exactly nothing from the other image under fp32, bf16 and fp16 alike.  Every
query always sees at least itself, so no row is fully masked.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .grouped_attention import GroupPlan, grouped_attention
from .rel_pos import (flat_bias_index, get_relative_position_index, resize_rel_pos_table,
                      table_shape, take_bias)
from .windows import window_partition


def check_fused_flag(use_fused) -> None:
    if use_fused not in (True, False, 'auto'):
        raise ValueError(f"use_fused_attn must be True, False or 'auto', got {use_fused!r}")


def use_fused_path(use_fused: Union[bool, str], q: torch.Tensor) -> bool:
    """Resolve ``'auto'`` for one call (see the module docstring)."""
    if use_fused != 'auto':
        return bool(use_fused)
    return q.device.type != 'cpu' or not (torch.is_grad_enabled() and q.requires_grad)


def isolation_pattern(mask: torch.Tensor, hw: Tuple[int, int],
                      window_size: Tuple[int, int]) -> torch.Tensor:
    """Additive pattern that keeps the two mixed images apart inside each window.

    Args:
        mask: ``[1, H*W, 1]`` 0/1 mixing mask at this stage's (window-padded) resolution.
        hw: ``(H, W)``.
        window_size: ``(Wh, Ww)``.

    Returns:
        ``[nW, 1, N, N]`` float: 0 where query and key come from the same image, ``-inf``
        otherwise.  It is shared by the whole batch because the mask is.
    """
    m = window_partition(mask.reshape(1, hw[0], hw[1], 1), window_size)[..., 0]  # [nW, N]
    same = m.unsqueeze(2) == m.unsqueeze(1)
    pattern = torch.zeros(same.shape, dtype=torch.float32, device=mask.device)
    return pattern.masked_fill_(~same, float('-inf')).unsqueeze(1)


def shifted_window_pattern(hw: Tuple[int, int], window_size: Tuple[int, int],
                           shift: Tuple[int, int], device=None) -> torch.Tensor:
    """Swin's mask for cyclically shifted windows: ``[nW, 1, N, N]`` with 0 / ``-inf``."""
    h, w = hw
    regions = torch.zeros(1, h, w, 1, device=device)
    label = 0
    for hs in (slice(0, -window_size[0]), slice(-window_size[0], -shift[0]), slice(-shift[0], None)):
        for ws in (slice(0, -window_size[1]), slice(-window_size[1], -shift[1]), slice(-shift[1], None)):
            regions[:, hs, ws, :] = label
            label += 1
    r = window_partition(regions, window_size)[..., 0]
    same = r.unsqueeze(2) == r.unsqueeze(1)
    pattern = torch.zeros(same.shape, dtype=torch.float32, device=device)
    return pattern.masked_fill_(~same, float('-inf')).unsqueeze(1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias.

    Args:
        embed_dims: channels ``C``.
        num_heads: heads ``nH``.
        window_size: ``(Wh, Ww)``; the bias table has ``(2Wh-1)*(2Ww-1)`` rows.
        use_fused: ``True`` (always ``scaled_dot_product_attention``), ``False`` (always the
            reference path) or ``'auto'`` (see the module docstring).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 use_fused: Union[bool, str] = 'auto'):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        check_fused_flag(use_fused)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = tuple(window_size)
        self.scale = (embed_dims // num_heads)**-0.5
        self.use_fused = use_fused
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(table_shape(self.window_size)[0] * table_shape(self.window_size)[1],
                        num_heads))
        # rebuilt from the window size, never loaded from a checkpoint
        self.register_buffer('relative_position_index',
                             get_relative_position_index(self.window_size), persistent=False)
        # the same index into the flattened table, in the [nH, N, N] layout of the scores
        self.register_buffer('relative_bias_flat_index',
                             flat_bias_index(self.relative_position_index, num_heads),
                             persistent=False)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def relative_bias(self, window_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """``[nH, N, N]`` bias for this window size (the table is resized for other sizes)."""
        table = self.relative_position_bias_table
        if window_size is None or tuple(window_size) == self.window_size:
            index = self.relative_bias_flat_index
        else:
            table = resize_rel_pos_table(table, self.window_size, window_size)
            index = flat_bias_index(get_relative_position_index(window_size).to(table.device),
                                    self.num_heads)
        return take_bias(table, index)

    def forward(self,
                x: torch.Tensor,
                pattern: Optional[torch.Tensor] = None,
                window_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """
        Args:
            x: ``[B * nW, N, C]`` windows, grouped per image.
            pattern: ``[nW, 1, N, N]`` additive 0/-inf mask shared by the batch, or None.
            window_size: the window actually used, when it differs from the table's.

        Returns:
            ``[B * nW, N, C]``.
        """
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_bias(window_size).unsqueeze(0)  # [1, nH, N, N]
        if pattern is not None:
            nw = pattern.shape[0]
            # fold the window index into the head axis so the mask is broadcast over images
            qkv = qkv.reshape(3, bw // nw, nw * heads, n, c // heads)
            attn_mask = (bias + pattern).reshape(1, nw * heads, n, n)
        else:
            attn_mask = bias
        q, k, v = qkv.unbind(0)
        drop = self.attn_drop if self.training else 0.
        if use_fused_path(self.use_fused, q):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype),
                                                 dropout_p=drop)
        else:
            attn = torch.matmul(q, k.transpose(-2, -1))
            # in place: the product itself is not needed by matmul's backward
            attn.mul_(self.scale).add_(attn_mask.to(attn.dtype))
            attn = attn.softmax(dim=-1)
            attn = F.dropout(attn, drop, training=self.training)
            out = attn @ v
        out = out.reshape(bw, heads, n, c // heads).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(out))

    def forward_grouped(self, x: torch.Tensor, plan: GroupPlan) -> torch.Tensor:
        """Attention within each image group only (see ``grouped_attention.py``).

        Args:
            x: ``[B, S, C]`` tokens in the plan's slot order (the stage permuted them once).
            plan: the stage's plan, built for this module's window size.

        Returns:
            ``[B, S, C]``, slot order.
        """
        if plan.window_tokens != self.window_size[0] * self.window_size[1]:
            raise ValueError(f'grouped attention: the plan is for {plan.window_tokens}-token '
                             f'windows, this block uses {self.window_size}')
        out = grouped_attention(self.qkv(x), plan, self.relative_position_bias_table,
                                self.num_heads, self.scale, self.attn_drop, self.training)
        return self.proj_drop(self.proj(out))


class SelfAttention(nn.Module):
    """Plain multi-head self-attention (ViT decoder blocks). ``x: [B, L, C]``."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 use_fused: Union[bool, str] = True):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        check_fused_flag(use_fused)
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.use_fused = use_fused
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.use_fused:  # True or 'auto': without a mask the fused kernels also train fast
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc1 -> GELU -> drop -> fc2 -> drop``."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth per sample."""

    def __init__(self, drop_prob: float = 0.):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class TransformerBlock(nn.Module):
    """Pre-norm ViT block used by the decoder: keys ``norm1, attn.*, norm2, mlp.*``."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, use_fused: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = SelfAttention(embed_dims, num_heads, qkv_bias, use_fused)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

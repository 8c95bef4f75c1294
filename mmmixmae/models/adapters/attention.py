"""Isolation-aware versions of the upstream attention layers.

Each class subclasses the upstream one (same parameters, same state-dict keys) and, while a
mixing mask is active, adds ``-inf`` between queries and keys of different images:

* ``ShiftWindowMSA`` (Swin): the same-image pattern is laid out on the padded, cyclically
  shifted grid and added to the upstream shift mask window by window.
* ``GlobalSubsampledAttention`` (Twins GSA): keys are pooled by a ``sr x sr`` patchify
  convolution; a pooled key belongs to one image as long as ``sr`` tiles the mixing cell,
  which is checked; queries only see the pooled keys of their own image.
* ``LocallyGroupedSelfAttention`` (Twins-SVT LSA): the same-image pattern is added to the
  upstream padding mask inside every local window.

Without an active mask every class runs its upstream forward.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones.twins import (GlobalSubsampledAttention,
                                               LocallyGroupedSelfAttention)
from mmpretrain.models.utils.attention import ShiftWindowMSA

from .context import image_labels, isolation_bias


def window_labels(labels: torch.Tensor, window: int) -> torch.Tensor:
    """``[Hp, Wp]`` -> ``[nW, window*window]`` in the upstream window order (row-major)."""
    hp, wp = labels.shape
    lab = labels.view(hp // window, window, wp // window, window).permute(0, 2, 1, 3)
    return lab.reshape(-1, window * window)


class IsolatedShiftWindowMSA(ShiftWindowMSA):
    """Swin (shifted) window attention; query ``[B, H*W, C]`` with ``hw_shape = (H, W)``."""

    def forward(self, query: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        self._mix_hw = tuple(hw_shape)
        return super().forward(query, hw_shape)

    def get_attn_mask(self, hw_shape, window_size, shift_size, device=None):
        """Upstream shift mask (``[nW, N, N]`` or None) plus the same-image pattern."""
        base = ShiftWindowMSA.get_attn_mask(hw_shape, window_size, shift_size, device)
        if not self.mix_ctx.active:
            return base
        mask = self.mix_ctx.mask_at(self._mix_hw, self.mix_path)
        labels = image_labels(mask, tuple(hw_shape))
        if shift_size > 0:
            labels = torch.roll(labels, shifts=(-shift_size, -shift_size), dims=(0, 1))
        lab = window_labels(labels, window_size)
        iso = isolation_bias(lab, lab, torch.float32)
        return iso if base is None else base.to(iso.dtype) + iso


def _sdpa(q, k, v, bias, dropout_p: float) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                          dropout_p=dropout_p)


class IsolatedGSA(GlobalSubsampledAttention):
    """Twins global sub-sampled attention; ``x [B, H*W, C]``, ``hw_shape = (H, W)``."""

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        if not self.mix_ctx.active:
            return super().forward(x, hw_shape)
        b, n, c = x.shape
        h, w = hw_shape
        q_labels = self.mix_ctx.mask_at((h, w), self.mix_path).reshape(-1).long()
        q = self.q(x).reshape(b, n, self.num_heads, c // self.num_heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            # self.sr is a CellConv2d: it checks that sr tiles the mixing cell
            kv_in = self.sr(x.transpose(1, 2).reshape(b, c, h, w))
            k_hw = kv_in.shape[-2:]
            kv_in = self.norm(kv_in.reshape(b, c, -1).transpose(1, 2))
            k_labels = self.mix_ctx.mask_at(k_hw, self.mix_path).reshape(-1).long()
        else:
            kv_in, k_labels = x, q_labels
        kv = self.kv(kv_in).reshape(b, -1, 2, self.num_heads, self.head_dims).permute(
            2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        bias = isolation_bias(q_labels, k_labels, torch.float32)[None, None]
        out = _sdpa(q, k, v, bias, self.attn_drop if self.training else 0.)
        out = out.transpose(1, 2).reshape(b, n, self.embed_dims)
        out = self.out_drop(self.proj_drop(self.proj(out)))
        if self.v_shortcut:
            out = v.squeeze(1) + out
        return out


class IsolatedLSA(LocallyGroupedSelfAttention):
    """Twins-SVT locally-grouped attention; ``x [B, H*W, C]``, ``hw_shape = (H, W)``."""

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        if not self.mix_ctx.active:
            return super().forward(x, hw_shape)
        b, n, c = x.shape
        h, w = hw_shape
        ws = self.window_size
        pad_r, pad_b = (-w) % ws, (-h) % ws
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = x.shape[1:3]
        nh, nw = hp // ws, wp // ws
        labels = image_labels(self.mix_ctx.mask_at((h, w), self.mix_path), (hp, wp))
        lab = window_labels(labels, ws)  # [nW, ws*ws]
        # the upstream padding bias, built with the upstream slicing: -1000 between
        # positions flagged differently (note: with pad_b == 0 or pad_r == 0 the slices cover
        # the whole grid, so upstream flags nothing apart; this keeps that behaviour)
        flag = torch.zeros(hp, wp, device=x.device)
        flag[-pad_b:, :] = 1
        flag[:, -pad_r:] = 1
        flag = window_labels(flag, ws)
        pad_bias = (flag.unsqueeze(1) - flag.unsqueeze(2)).ne(0).float() * -1000.0
        bias = pad_bias + isolation_bias(lab, lab, torch.float32)  # [nW, N, N]
        x = x.reshape(b, nh, ws, nw, ws, c).transpose(2, 3)
        qkv = self.qkv(x).reshape(b, nh * nw, ws * ws, 3, self.num_heads,
                                  c // self.num_heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = (attn + bias[None, :, None]).softmax(dim=-1)
        attn = self.attn_drop(attn)
        out = (attn @ v).transpose(2, 3).reshape(b, nh, nw, ws, ws, c)
        out = out.transpose(2, 3).reshape(b, hp, wp, c)[:, :h, :w].reshape(b, n, c)
        return self.proj_drop(self.proj(out))

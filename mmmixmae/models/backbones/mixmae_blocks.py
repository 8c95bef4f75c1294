"""The building blocks of :class:`~.mixmae_swin.MixMAESwin`: stem, patch merging, block, stage.

* ``PatchEmbed``: conv ``patch_size`` / stride ``patch_size`` + LayerNorm, ``[B, 3, H, W] -> [B, L, C]``;
* ``PatchMerging``: Swin's 2x2 merge, ``[B, H*W, C] -> [B, H/2*W/2, 2C]``;
* ``MixMAEBlock``: pre-norm window attention + MLP, isolation/shift patterns from a stage plan;
* ``MixMAEStage``: the blocks of one resolution (one attention plan shared by all of them) and
  the optional patch merging.

Module and parameter names follow the official Sense-X/MixMIM code.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..utils.attention import DropPath, Mlp, WindowAttention, shifted_window_pattern
from ..utils.attn_path import StageAttnPlan, build_stage_plan, check_attn_path
from ..utils.compile import compiled
from ..utils.grouped_attention import from_slots, to_slots
from ..utils.windows import pad_to_multiple, window_partition, window_reverse

__all__ = ['PatchEmbed', 'PatchMerging', 'MixMAEBlock', 'MixMAEStage']


class PatchEmbed(nn.Module):
    """Conv ``patch_size`` / stride ``patch_size`` + LayerNorm. ``[B, 3, H, W] -> [B, L, C]``."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        p = self.patch_size
        pad_h, pad_w = (-x.shape[2]) % p, (-x.shape[3]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class PatchMerging(nn.Module):
    """Swin patch merging: 2x2 neighbours -> LayerNorm(4C) -> Linear(4C -> 2C, no bias).

    The neighbours are concatenated as (even row, even col), (odd, even), (even, odd),
    (odd, odd), the official (timm) order.  Odd grids are zero-padded first.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
        b, _, c = x.shape
        x, _, _ = pad_to_multiple(x.view(b, hw[0], hw[1], c), (2, 2))
        h2, w2 = x.shape[1] // 2, x.shape[2] // 2
        # [B, h2, dy, w2, dx, C] -> [B, h2, w2, dx, dy, C]: the concatenation order above in one
        # copy (four strided slices and a cat cost four zero-filled input-sized gradients)
        x = x.view(b, h2, 2, w2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h2 * w2, 4 * c)
        return self.reduction(self.norm(x)), (h2, w2)


def mlp_residual(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x + drop_path(mlp(norm2(x)))``: the token-wise half of a block (compiled on request)."""
    return x + block.drop_path(block.mlp(block.norm2(x)))


class MixMAEBlock(nn.Module):
    """Pre-norm window attention + MLP.

    Args:
        window_size: ``(Wh, Ww)`` of the bias table (already clamped to the stage grid).
        shift: cyclic shift ``(sh, sw)`` for Swin-style shifted windows (dense fine-tuning).
        global_attn: attend over the whole (padded) grid; the bias table is resized on the fly.
        compile_cfg: ``torch.compile`` arguments for :func:`mlp_residual`, or None (eager).
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: Tuple[int, int],
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float = 0., shift: bool = False,
                 global_attn: bool = False, use_fused_attn: Union[bool, str] = 'auto',
                 compile_cfg: Optional[dict] = None):
        super().__init__()
        self.compile_cfg = compile_cfg
        self.window_size = tuple(window_size)
        self.shift = (self.window_size[0] // 2, self.window_size[1] // 2) if shift else (0, 0)
        self.global_attn = global_attn
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, self.window_size, qkv_bias,
                                    attn_drop, drop, use_fused_attn)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                iso: Optional[StageAttnPlan] = None) -> torch.Tensor:
        """
        Args:
            x: ``[B, H*W, C]``; on the grouped path ``[B, S, C]`` in the stage plan's slot
                order (:class:`MixMAEStage` permutes once for all its blocks).
            hw: ``(H, W)``.
            iso: the stage's isolation structure (pretraining, built once per stage by
                :class:`MixMAEStage`), or None.
        """
        b, length, c = x.shape
        h, w = hw
        shortcut = x
        window = (h, w) if self.global_attn else self.window_size
        if iso is not None and iso.path == 'grouped':
            if any(self.shift):
                raise ValueError("attn_path='grouped' cannot run shifted windows (the mixing "
                                 "groups are defined on unshifted windows): use attn_path='dense'")
            x = self.attn.forward_grouped(self.norm1(x), iso.get(window, self.attn))
            x = shortcut + self.drop_path(x)
            return compiled(mlp_residual, self.compile_cfg)(self, x)
        x = self.norm1(x).view(b, h, w, c)
        x, pad_h, pad_w = pad_to_multiple(x, window)
        hp, wp = x.shape[1], x.shape[2]
        pattern = iso.get(window, self.attn) if iso is not None else None
        if any(self.shift) and not self.global_attn:
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
            pattern = shifted_window_pattern((hp, wp), window, self.shift, x.device)
        windows = self.attn(window_partition(x, window), pattern,
                            None if window == self.window_size else window)
        x = window_reverse(windows, window, hp, wp)
        if any(self.shift) and not self.global_attn:
            x = torch.roll(x, shifts=self.shift, dims=(1, 2))
        x = x[:, :h, :w].reshape(b, length, c)
        x = shortcut + self.drop_path(x)
        return compiled(mlp_residual, self.compile_cfg)(self, x)


class MixMAEStage(nn.Module):
    """Blocks of one resolution followed by an optional patch merging."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, window_size: Tuple[int, int],
                 drop_paths: Sequence[float], downsample: bool, shift: bool = False,
                 global_blocks: Sequence[int] = (), with_cp: bool = False,
                 attn_path: str = 'auto', **block_kwargs):
        super().__init__()
        check_attn_path(attn_path)
        self.with_cp = with_cp
        self.attn_path = attn_path
        self.blocks = nn.ModuleList([
            MixMAEBlock(embed_dims, num_heads, window_size, drop_path=drop_paths[j],
                        shift=shift and j % 2 == 1, global_attn=j in global_blocks,
                        **block_kwargs) for j in range(depth)
        ])
        self.downsample = PatchMerging(embed_dims, 2 * embed_dims) if downsample else None

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                iso_mask: Optional[torch.Tensor] = None):
        """Returns ``(stage_output, hw, next_input, next_hw)``.

        The isolation structure (dense pattern or grouped plan) is built here once per call
        and shared by all blocks.
        """
        iso = None
        plan = None
        if iso_mask is not None:
            iso = build_stage_plan(self.attn_path, iso_mask, hw)
            if iso.path == 'grouped':
                # one permutation into slot order for all blocks (they share the window)
                first = self.blocks[0]
                window = hw if first.global_attn else first.window_size
                plan = iso.get(window, first.attn)
                x = to_slots(x, plan)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, hw, iso, use_reentrant=False)
            else:
                x = block(x, hw, iso)
        if plan is not None:
            x = from_slots(x, plan)
        if self.downsample is None:
            return x, hw, x, hw
        down, down_hw = self.downsample(x, hw)
        return x, hw, down, down_hw

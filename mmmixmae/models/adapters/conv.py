"""Convolutions that keep the two mixed images apart.

* :class:`MixedConv2d` -- MixMAE's mixed convolution (paper, Fig. 5): each image's features
  are convolved with the other image's positions zeroed, and each result is kept only at
  that image's output positions.  Used for depthwise, position-encoding and overlapping
  (kernel > stride) convolutions.
* :class:`CellConv2d` / :class:`CellUnfold` -- non-overlapping patchify layers
  (kernel == stride, no padding).  They cannot mix images as long as their kernel divides the
  mixing cell at their resolution; they check this and otherwise run the upstream op.

Each is a subclass of the upstream ``nn`` class with the same parameters, so state-dict keys
and ``isinstance`` checks are unchanged.  Without an active mask they are the upstream op.
"""
import torch
import torch.nn as nn

from .context import MixingContext


def adopt(module: nn.Module, cls: type, ctx: MixingContext, path: str) -> nn.Module:
    """A ``cls`` instance sharing every parameter, buffer and attribute of ``module``."""
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    new.mix_ctx = ctx
    new.mix_path = path
    return new


def conv_output_hw(conv: nn.Conv2d, hw):
    """Output size of ``conv`` for an ``hw`` input."""
    if isinstance(conv.padding, str):  # 'same' keeps the size, 'valid' is no padding
        if conv.padding == 'same':
            return tuple(hw)
        padding = (0, 0)
    else:
        padding = conv.padding
    out = []
    for i in range(2):
        k, s, p, d = conv.kernel_size[i], conv.stride[i], padding[i], conv.dilation[i]
        out.append((hw[i] + 2 * p - d * (k - 1) - 1) // s + 1)
    return tuple(out)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def is_patchify(m: nn.Module) -> bool:
    """Kernel == stride, no padding, no dilation: every output sees one input cell."""
    k, s, pad, dil = (_pair(m.kernel_size), _pair(m.stride), m.padding, _pair(m.dilation))
    if isinstance(pad, str):
        return False
    pad = _pair(pad)
    return (k == s and all(p == 0 for p in pad) and all(d == 1 for d in dil)
            and getattr(m, 'padding_mode', 'zeros') == 'zeros')


def is_pointwise(m: nn.Conv2d) -> bool:
    return _pair(m.kernel_size) == (1, 1) and _pair(m.stride) == (1, 1) and \
        not isinstance(m.padding, str) and _pair(m.padding) == (0, 0)


def check_cell_aligned(ctx: MixingContext, hw, kernel, where: str) -> None:
    """A patchify kernel must tile the mixing cells at its input resolution."""
    ch, cw = ctx.cells_per_side(hw, where)
    if ch % kernel[0] or cw % kernel[1]:
        raise ValueError(
            f'{where}: kernel/stride {kernel[0]}x{kernel[1]} does not divide the mixing cell '
            f'of {ch}x{cw} positions at this {hw[0]}x{hw[1]} map, so a patch would straddle '
            'the two images')


class CellConv2d(nn.Conv2d):
    """Patchify convolution (``[B, C, H, W] -> [B, C', H/k, W/k]``) with an alignment check."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix_ctx.active:
            check_cell_aligned(self.mix_ctx, x.shape[-2:], self.kernel_size, self.mix_path)
        return super().forward(x)


class CellUnfold(nn.Unfold):
    """Non-overlapping ``nn.Unfold`` (patch merging) with an alignment check."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix_ctx.active:
            check_cell_aligned(self.mix_ctx, x.shape[-2:], _pair(self.kernel_size),
                               self.mix_path)
        return super().forward(x)


class MixedConv2d(nn.Conv2d):
    """Mixed convolution: ``[B, C, H, W] -> [B, C', H', W']`` without cross-image leakage.

    ``y = where(m_out, conv(x with own positions zeroed), conv(x with partner positions
    zeroed))``, ``m_in`` / ``m_out`` the mixing mask at the input / output resolution.
    Zeroing matches the zero padding the convolution sees at the image border.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.mix_ctx
        if not ctx.active:
            return super().forward(x)
        if self.padding_mode != 'zeros':
            raise ValueError(f'{self.mix_path}: mixed convolution needs zero padding, '
                             f'got padding_mode={self.padding_mode!r}')
        hw_in = tuple(x.shape[-2:])
        m_in = ctx.mask_at(hw_in, self.mix_path)
        m_out = ctx.mask_at(conv_output_hw(self, hw_in), self.mix_path)
        zero = x.new_zeros(())
        own = self._conv_forward(torch.where(m_in, zero, x), self.weight, self.bias)
        partner = self._conv_forward(torch.where(m_in, x, zero), self.weight, self.bias)
        return torch.where(m_out, partner, own)


def swap_conv(module: nn.Module, ctx: MixingContext, path: str) -> nn.Module:
    """The isolation-aware replacement of an ``nn.Conv2d`` (itself when pointwise)."""
    if is_pointwise(module):
        return module
    if is_patchify(module):
        return adopt(module, CellConv2d, ctx, path)
    return adopt(module, MixedConv2d, ctx, path)


def swap_unfold(module: nn.Unfold, ctx: MixingContext, path: str) -> nn.Module:
    if not is_patchify(module):
        raise ValueError(f'{path} ({type(module).__module__}.{type(module).__name__}): an '
                         f'overlapping unfold (kernel {module.kernel_size}, stride '
                         f'{module.stride}, padding {module.padding}) cannot be isolated')
    return adopt(module, CellUnfold, ctx, path)


__all__ = ['MixedConv2d', 'CellConv2d', 'CellUnfold', 'swap_conv', 'swap_unfold', 'adopt']

"""What the adapter needs to know about each supported upstream backbone.

A spec gives the stride of every stage (checked against the 32-pixel mixing grid), the
channels of every stage, and the last-stage latent: the module whose output is captured
during a pretraining call and how it becomes ``[B, L, C]`` tokens.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
import torch.nn as nn
from mmpretrain.models.backbones.convnext import ConvNeXt
from mmpretrain.models.backbones.swin_transformer import SwinTransformer
from mmpretrain.models.backbones.twins import PCPVT, SVT

from .context import MIX_GRID


@dataclass
class BackboneSpec:
    stage_strides: Callable[[nn.Module], List[int]]
    channels: Callable[[nn.Module], List[int]]
    latent_module: Callable[[nn.Module], nn.Module]
    to_tokens: Callable[[nn.Module, object], torch.Tensor]


def _stride(conv) -> int:
    s = conv.stride
    return s[0] if isinstance(s, (tuple, list)) else s


def _cumulative(strides: List[int]) -> List[int]:
    out, acc = [], 1
    for s in strides:
        acc *= s
        out.append(acc)
    return out


# ------------------------------------------------------------------ Swin
def _swin_strides(m: SwinTransformer) -> List[int]:
    steps = [_stride(m.patch_embed.projection)]
    for stage in list(m.stages)[:-1]:
        steps.append(_stride(stage.downsample.sampler))
    return _cumulative(steps)


def _swin_channels(m: SwinTransformer) -> List[int]:
    return [stage.embed_dims for stage in m.stages]


def _swin_latent(m: SwinTransformer) -> nn.Module:
    return m.stages[-1]


def _swin_tokens(m: SwinTransformer, out) -> torch.Tensor:
    x, _ = out  # SwinBlockSequence returns (tokens [B, L, C], hw)
    last = len(m.stages) - 1
    return getattr(m, f'norm{last}')(x) if hasattr(m, f'norm{last}') else x


# ------------------------------------------------------------------ ConvNeXt
def _convnext_strides(m: ConvNeXt) -> List[int]:
    steps = [_stride(m.downsample_layers[0][0])]
    steps += [_stride(layer[1]) for layer in list(m.downsample_layers)[1:]]
    return _cumulative(steps)


def _convnext_tokens(m: ConvNeXt, out: torch.Tensor) -> torch.Tensor:
    last = m.num_stages - 1
    if hasattr(m, f'norm{last}'):
        out = getattr(m, f'norm{last}')(out)  # LayerNorm2d over channels, per position
    return out.flatten(2).transpose(1, 2)


# ------------------------------------------------------------------ Twins
def _twins_strides(m: PCPVT) -> List[int]:
    return _cumulative([_stride(pe.projection) for pe in m.patch_embeds])


def _twins_latent(m: PCPVT) -> nn.Module:
    return getattr(m, f'norm_after_stage{m.num_stage - 1}')


SPECS: Dict[type, BackboneSpec] = {
    SwinTransformer: BackboneSpec(_swin_strides, _swin_channels, _swin_latent, _swin_tokens),
    ConvNeXt: BackboneSpec(_convnext_strides, lambda m: list(m.channels),
                           lambda m: m.stages[-1], _convnext_tokens),
    PCPVT: BackboneSpec(_twins_strides, lambda m: list(m.embed_dims), _twins_latent,
                        lambda m, out: out),
    SVT: BackboneSpec(_twins_strides, lambda m: list(m.embed_dims), _twins_latent,
                      lambda m, out: out),
}


def spec_for(backbone: nn.Module) -> BackboneSpec:
    spec = SPECS.get(type(backbone))
    if spec is None:
        known = ', '.join(sorted(f'mmpretrain.{t.__name__}' for t in SPECS))
        raise ValueError(f'MixMAEAdapter does not know the backbone <backbone> '
                         f'({type(backbone).__module__}.{type(backbone).__qualname__}); '
                         f'supported: {known}')
    return spec


def check_strides(strides: List[int]) -> None:
    """Every stage stride must divide 32 and the last one must be 32."""
    for i, s in enumerate(strides):
        if MIX_GRID % s:
            raise ValueError(f'stage {i} has stride {s}, which does not divide the '
                             f'{MIX_GRID}-pixel mixing grid')
    if strides[-1] != MIX_GRID:
        raise ValueError(f'the last stage has stride {strides[-1]}, but MixMAE needs one latent '
                         f'token per {MIX_GRID}-pixel mixing cell (stride {MIX_GRID})')

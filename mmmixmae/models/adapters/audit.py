"""Audit of an upstream backbone: every module is known-safe, swapped, or refused.

The audit walks the module tree and looks each module's exact type up in three tables:

* ``POSITIONWISE`` -- leaves that act on each position (or each sample) on its own;
* ``COMPOSITES`` -- containers and blocks whose forward was read and only combines
  positions through children that are themselves audited (or swapped);
* swaps -- layers that would mix the two images and get an isolation-aware replacement.

Anything else fails the build naming the module path and its type: an unknown layer might
mix positions and the adapter never trains with leakage.
"""
from typing import Callable, Dict, List, Tuple

import torch.nn as nn
from mmcv.cnn.bricks import DropPath as McvDropPath
from mmcv.cnn.bricks.transformer import FFN, AdaptivePadding, PatchEmbed, PatchMerging
from mmcv.cnn.bricks.wrappers import Conv2d as McvConv2d
from mmcv.cnn.bricks.wrappers import Linear as McvLinear
from mmengine.model import ModuleList as EngModuleList
from mmengine.model import Sequential as EngSequential
from mmpretrain.models.backbones.convnext import ConvNeXt, ConvNeXtBlock
from mmpretrain.models.backbones.swin_transformer import (SwinBlock, SwinBlockSequence,
                                                          SwinTransformer)
from mmpretrain.models.backbones.twins import (PCPVT, SVT, GlobalSubsampledAttention,
                                               GSAEncoderLayer, LocallyGroupedSelfAttention,
                                               LSAEncoderLayer)
from mmpretrain.models.utils import GRN, ConditionalPositionEncoding, LayerNorm2d
from mmpretrain.models.utils.attention import ShiftWindowMSA, WindowMSA
from mmpretrain.models.utils.layer_scale import LayerScale

from .attention import IsolatedGSA, IsolatedLSA, IsolatedShiftWindowMSA
from .context import MixingContext
from .conv import CellConv2d, CellUnfold, MixedConv2d, adopt, swap_conv, swap_unfold

POSITIONWISE = (nn.Linear, McvLinear, nn.LayerNorm, LayerNorm2d, nn.GELU, nn.ReLU, nn.SiLU, nn.Dropout,
                nn.Identity, McvDropPath, LayerScale, AdaptivePadding)
COMPOSITES = (nn.Sequential, nn.ModuleList, EngSequential, EngModuleList, FFN, PatchEmbed,
              PatchMerging, SwinBlock, SwinBlockSequence, ConvNeXtBlock, GSAEncoderLayer,
              LSAEncoderLayer, ConditionalPositionEncoding, SwinTransformer, ConvNeXt, PCPVT,
              SVT)
# layers only safe as the child of an isolated parent that passes them the pattern
INSIDE = {WindowMSA: IsolatedShiftWindowMSA, nn.Softmax: WindowMSA}
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
REFUSED: Dict[type, str] = {
    GRN: 'global response normalization pools every position of the map, so each image '
         'would be normalized with its partner',
    nn.GroupNorm: 'GroupNorm pools over all positions of the map',
    nn.InstanceNorm2d: 'InstanceNorm pools over all positions of the map',
    nn.LocalResponseNorm: 'LocalResponseNorm is not audited',
}


def _swap_attention(cls: type) -> Callable:
    def swap(module: nn.Module, ctx: MixingContext, path: str) -> nn.Module:
        return adopt(module, cls, ctx, path)
    return swap


SWAPS: Dict[type, Callable] = {
    nn.Conv2d: swap_conv,
    McvConv2d: swap_conv,
    nn.Unfold: swap_unfold,
    ShiftWindowMSA: _swap_attention(IsolatedShiftWindowMSA),
    GlobalSubsampledAttention: _swap_attention(IsolatedGSA),
    LocallyGroupedSelfAttention: _swap_attention(IsolatedLSA),
}


ISOLATED = (CellConv2d, CellUnfold, MixedConv2d, IsolatedShiftWindowMSA, IsolatedGSA,
            IsolatedLSA)


def type_name(module: nn.Module) -> str:
    return f'{type(module).__module__}.{type(module).__qualname__}'


def refuse(path: str, module: nn.Module, reason: str) -> ValueError:
    return ValueError(f'MixMAEAdapter cannot isolate {path or "<backbone>"} '
                      f'({type_name(module)}): {reason}')


def isolate(root: nn.Module, ctx: MixingContext) -> Tuple[List[str], List[str]]:
    """Swap, in place, every layer of ``root`` that would mix the two images.

    Returns ``(swapped paths, batch-norm paths)``; batch norms are only allowed in eval mode,
    which the adapter checks at each pretraining call.
    """
    swapped: List[str] = []
    batch_norms: List[str] = []

    def visit(module: nn.Module, path: str, parent: nn.Module) -> None:
        kind = type(module)
        if getattr(module, 'with_cp', False):
            raise refuse(path, module, 'activation checkpointing (with_cp=True) recomputes '
                         'the forward during backward, after the mixing mask is gone; '
                         'set with_cp=False')
        if kind in REFUSED:
            raise refuse(path, module, REFUSED[kind])
        if kind in BATCH_NORMS:
            batch_norms.append(path)
            return
        if kind in INSIDE:
            if not isinstance(parent, INSIDE[kind]):
                raise refuse(path, module, f'only isolated inside {INSIDE[kind].__name__}')
        elif kind not in POSITIONWISE and kind not in COMPOSITES and kind not in ISOLATED \
                and not (kind in SWAPS and kind in (nn.Conv2d, McvConv2d)):
            raise refuse(path, module, 'this layer type is not known to the adapter; it may '
                         'mix positions of the two images')
        for name, child in list(module.named_children()):
            child_path = f'{path}.{name}' if path else name
            if type(child) in SWAPS:
                new = SWAPS[type(child)](child, ctx, child_path)
                if new is not child:
                    module._modules[name] = new
                    swapped.append(child_path)
                child = new
            visit(child, child_path, module)

    if type(root) in SWAPS:
        raise refuse('', root, 'the backbone itself is a single layer')
    visit(root, '', None)
    return swapped, batch_norms

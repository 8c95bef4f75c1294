"""MixMAEAdapter: MixMAE pretraining for hierarchical backbones built from the registry.

``dict(type='MixMAEAdapter', backbone=dict(type='mmpretrain.ConvNeXt', arch='tiny'))``
builds the upstream backbone unchanged, swaps the layers that would mix the two images for
isolation-aware versions (see :mod:`.audit`), and exposes the ``MixMAESwin`` pretraining call
``backbone(x, mask) -> (latent [B, H/32*W/32, C], mask)``.  Without a mask it is the upstream
backbone.  Its parameters, buffers and children *are* the upstream's, so the state-dict keys
are the upstream keys: a checkpoint loads into the plain upstream backbone as it is.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .audit import isolate, type_name
from .context import MIX_GRID, MixingContext
from .specs import check_strides, spec_for


def check_mixing_input(x: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
    """``x [B, C, H, W]`` with ``H, W`` multiples of 32, ``mask [1, 1, H/32, W/32]``."""
    h, w = x.shape[-2:]
    for name, size in (('height', h), ('width', w)):
        if size % MIX_GRID:
            raise ValueError(f'input {name} {size} is not a multiple of the {MIX_GRID}-pixel '
                             f'mixing grid (input {h}x{w})')
    grid = (1, 1, h // MIX_GRID, w // MIX_GRID)
    if mask is not None and tuple(mask.shape) != grid:
        raise ValueError(f'mixing mask must have shape {grid} for {h}x{w} images, got '
                         f'{tuple(mask.shape)}')


def cell_to_pixels(mask: torch.Tensor) -> torch.Tensor:
    """``[1, 1, h, w]`` -> boolean ``[1, 1, 32h, 32w]``."""
    return mask.bool().repeat_interleave(MIX_GRID, 2).repeat_interleave(MIX_GRID, 3)


@MODELS.register_module()
class MixMAEAdapter(BaseModule):
    """Wrap a registered hierarchical backbone for MixMAE pretraining.

    Args:
        backbone: config of the upstream backbone (``mmpretrain.SwinTransformer``,
            ``mmpretrain.ConvNeXt``, ``mmpretrain.PCPVT``, ``mmpretrain.SVT``).
        img_size: the pretraining image size, a multiple of 32 (tools such as the
            reconstruction picture use it; every call accepts any multiple of 32).

    Attributes:
        num_features: channels of every stage; ``num_features[-1]`` is the latent width.
        encoder_stride: 32, pixels per latent token.
        fill_mode: ``'mix'`` (the only mode: the partner image fills the masked cells).
    """
    encoder_stride = MIX_GRID
    fill_mode = 'mix'

    def __init__(self, backbone: dict, img_size: Union[int, Sequence[int]] = 224,
                 init_cfg: Optional[dict] = None):
        if init_cfg is not None:
            raise ValueError('MixMAEAdapter takes no init_cfg; put it in the backbone config')
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        for side in img_size:
            if side % MIX_GRID:
                raise ValueError(f'img_size {side} is not a multiple of the {MIX_GRID}-pixel '
                                 'mixing grid')
        super().__init__()
        upstream = MODELS.build(backbone)
        spec = spec_for(upstream)
        strides = spec.stage_strides(upstream)
        check_strides(strides)
        ctx = MixingContext()
        swapped, batch_norms = isolate(upstream, ctx)
        # the adapter *is* a view of the upstream module: same parameter, buffer and child
        # dicts, so state-dict keys, .to() and optimizers see the upstream objects
        for attr in ('_parameters', '_buffers', '_non_persistent_buffers_set', '_modules'):
            object.__setattr__(self, attr, getattr(upstream, attr))
        object.__setattr__(self, '_upstream', upstream)
        self._version = getattr(upstream, '_version', 1)
        self.img_size = img_size
        self.mix_ctx = ctx
        self.spec = spec
        self.stage_strides = strides
        self.num_features = spec.channels(upstream)
        self.swapped_layers = swapped
        self.batch_norm_layers = batch_norms

    # ------------------------------------------------------------------ the upstream view
    @property
    def upstream(self) -> nn.Module:
        return self.__dict__['_upstream']

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            upstream = self.__dict__.get('_upstream')
            if upstream is None:
                raise
            return getattr(upstream, name)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.upstream._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, *args, **kwargs):
        # the upstream's own hooks (e.g. Swin's bias-table resizing) run as for the plain model
        self.upstream._load_from_state_dict(*args, **kwargs)

    def _adapt_checkpoint(self, state_dict, prefix, *args) -> None:
        """Hook the project's strict loader calls before loading (``MixMAESwin`` resizes
        position tables here).  That loader drops ``relative_position_index`` entries as
        rebuilt from the window size; Swin keeps them as persistent buffers, so the adapter's
        own (a function of its window size only) are put back.  Everything else is left to the
        upstream backbone's load hooks, which run as for the plain upstream model."""
        for key, value in self.state_dict().items():
            if key.endswith('relative_position_index') and prefix + key not in state_dict:
                state_dict[prefix + key] = value.clone()

    def adapt_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """A copy of ``state_dict`` (the upstream keys, no prefix) for this model, as
        :func:`mmmixmae.checkpoint.pretrained.load_pretrained_backbone` (``init_cfg``, the
        k-NN tool) expects of a backbone: the dropped ``relative_position_index`` buffers put
        back (see :meth:`_adapt_checkpoint`); nothing is interpolated."""
        out = OrderedDict(state_dict)
        self._adapt_checkpoint(out, '')
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        self.upstream.train(mode)  # upstream freezing / norm_eval rules
        return self

    def init_weights(self):
        upstream = self.upstream
        info = self.__dict__.get('_params_init_info')
        if info is not None:  # initialise as part of the enclosing model
            upstream._params_init_info = info
        try:
            upstream.init_weights()
        finally:
            if info is not None:
                del upstream._params_init_info
        self._is_init = True

    # ------------------------------------------------------------------ pretraining
    def check_pretrain_input(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        check_mixing_input(x, mask)

    def _check_norm_modes(self) -> None:
        for path in self.batch_norm_layers:
            bn = self.upstream.get_submodule(path)
            if bn.training:
                raise ValueError(f'MixMAEAdapter cannot isolate {path} ({type_name(bn)}) in '
                                 'train mode: batch statistics pool both images; freeze it '
                                 '(eval mode, e.g. norm_eval=True) or use a LayerNorm')

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """
        Args:
            x: ``[B, 3, H, W]``.
            mask: pretraining only: ``[1, 1, H/32, W/32]`` 0/1, 1 = the cell comes from the
                partner ``B-1-i``.

        Returns:
            with ``mask``: ``(latent [B, H/32*W/32, C], mask)``; without: the upstream
            backbone's outputs.
        """
        if mask is None:
            return self.upstream(x)
        check_mixing_input(x, mask)
        self._check_norm_modes()
        mask = mask.to(dtype=x.dtype)
        x = torch.where(cell_to_pixels(mask), x.flip(0), x)
        captured: List = []
        handle = self.spec.latent_module(self.upstream).register_forward_hook(
            lambda module, args, out: captured.append(out))
        self.mix_ctx.set(mask)
        try:
            self.upstream(x)
        finally:
            self.mix_ctx.set(None)
            handle.remove()
        return self.spec.to_tokens(self.upstream, captured[-1]), mask

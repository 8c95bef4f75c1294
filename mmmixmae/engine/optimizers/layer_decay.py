"""Layer-wise learning-rate decay for a MixMAE backbone inside a detector or segmentor.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the *whole model* for
``get_layer_depth``; mmdet detectors and mmseg segmentors do not have one, and neither library
ships a layer-decay constructor for Swin-like backbones.  This constructor asks only the
backbone (``model.backbone.get_layer_depth(name, 'backbone.')``) and gives every other
parameter (neck, RPN, RoI heads, decode heads) the plain base learning rate.

It is registered in mmengine's root ``OPTIM_WRAPPER_CONSTRUCTORS``, so mmdet, mmseg and
mmpretrain configs (whose registries are children of the root) all find it by name.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: parameters without weight decay besides all 1-D ones (biases, norms).
DEFAULT_NO_DECAY_KEYS = ('absolute_pos_embed', 'relative_position_bias_table', 'mask_token')

_KNOWN_KEYS = {'layer_decay_rate', 'backbone', 'no_decay_keys'}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MixMAELayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper with layer-wise lr decay driven by the backbone's layer ids.

    ``paramwise_cfg`` fields:

    - ``layer_decay_rate`` (float in (0, 1], required): a backbone parameter with layer id
      ``k`` out of ``num_layers`` (both from ``backbone.get_layer_depth``) gets
      ``lr = base_lr * rate ** (num_layers - k - 1)``.  For ``MixMAESwin`` that is the
      official MixMIM rule ``rate ** (sum(depths) + 1 - k)``: the stem gets the smallest
      rate, the last block ``rate ** 1``.
    - ``backbone`` (str, default ``'backbone'``): attribute of the model holding the backbone.
    - ``no_decay_keys`` (sequence of str): parameters whose name contains one of them get no
      weight decay; default :data:`DEFAULT_NO_DECAY_KEYS`.  All 1-D parameters (biases,
      LayerNorm/BatchNorm weights) get no weight decay in any case.

    Parameters outside the backbone get ``lr_scale`` 1.  Frozen parameters
    (``requires_grad=False``: the fixed position embedding, ``frozen_stages``) are left out.
    Each param group carries ``lr_scale`` and ``layer_id`` (``-1`` outside the backbone).

    Example::

        optim_wrapper = dict(
            type='AmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
            constructor='MixMAELayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - _KNOWN_KEYS
        if unknown:
            raise ValueError(f'MixMAELayerDecayOptimWrapperConstructor: unknown paramwise_cfg '
                             f'keys {sorted(unknown)}; supported: {sorted(_KNOWN_KEYS)}')
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError('MixMAELayerDecayOptimWrapperConstructor needs '
                             'paramwise_cfg.layer_decay_rate')
        rate = paramwise_cfg['layer_decay_rate']
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'layer_decay_rate must be a number in (0, 1], got {rate!r}')
        no_decay = paramwise_cfg.get('no_decay_keys', DEFAULT_NO_DECAY_KEYS)
        if isinstance(no_decay, str):
            raise ValueError(f'no_decay_keys must be a list of names, got the string {no_decay!r}')
        self.layer_decay_rate = float(rate)
        self.backbone_attr = paramwise_cfg.get('backbone', 'backbone')
        self.no_decay_keys: Tuple[str, ...] = tuple(no_decay)
        # the parent only validates/keeps paramwise_cfg; it must be non-empty so that
        # ``__call__`` goes through ``add_params``.
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def _backbone(self, model: nn.Module) -> nn.Module:
        backbone = getattr(model, self.backbone_attr, None)
        if backbone is None:
            raise TypeError(f'{type(model).__name__} has no attribute {self.backbone_attr!r}; '
                            'MixMAELayerDecayOptimWrapperConstructor needs the backbone '
                            '(set paramwise_cfg.backbone)')
        if not callable(getattr(backbone, 'get_layer_depth', None)):
            raise TypeError(f'backbone {type(backbone).__name__} has no get_layer_depth(name, '
                            'prefix) method, so layer-wise lr decay cannot be applied')
        return backbone

    def param_setting(self, model: nn.Module, name: str, param) -> Tuple[int, float, bool]:
        """``(layer_id, lr_scale, no_decay)`` of one named parameter of ``model``."""
        prefix = f'{self.backbone_attr}.'
        if name.startswith(prefix):
            layer_id, num_layers = self._backbone(model).get_layer_depth(name, prefix)
            if not 0 <= layer_id < num_layers:
                raise ValueError(f'get_layer_depth({name!r}) returned layer {layer_id} outside '
                                 f'0..{num_layers - 1}')
            scale = self.layer_decay_rate**(num_layers - layer_id - 1)
        else:
            layer_id, scale = -1, 1.0
        no_decay = param.ndim <= 1 or any(key in name for key in self.no_decay_keys)
        return layer_id, scale, no_decay

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        """Fill ``params`` with one group per (layer id, decay / no decay)."""
        if prefix:
            raise ValueError('MixMAELayerDecayOptimWrapperConstructor builds groups for the '
                             'whole model only')
        self._backbone(module)
        groups: Dict[Tuple[int, bool], dict] = OrderedDict()
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id, scale, no_decay = self.param_setting(module, name, param)
            group = groups.get((layer_id, no_decay))
            if group is None:
                group = dict(params=[], lr=self.base_lr * scale, lr_scale=scale,
                             layer_id=layer_id)
                if self.base_wd is not None:
                    group['weight_decay'] = 0. if no_decay else self.base_wd
                groups[(layer_id, no_decay)] = group
            group['params'].append(param)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] < 0, kv[0][0], kv[0][1]))
        params.extend(group for _, group in ordered)
        self._log(ordered)

    def _log(self, ordered: Sequence) -> None:
        logger = MMLogger.get_current_instance()
        lines = [f'layer-wise lr decay {self.layer_decay_rate} over {self.backbone_attr}:']
        for (layer_id, no_decay), group in ordered:
            where = 'non-backbone' if layer_id < 0 else f'layer {layer_id}'
            count = sum(p.numel() for p in group['params'])
            lines.append(f'  {where:>13} lr_scale={group["lr_scale"]:.4g} '
                         f'weight_decay={group.get("weight_decay", 0.):.3g} '
                         f'({len(group["params"])} tensors, {count} values)'
                         + (' [no decay]' if no_decay else ''))
        logger.info('\n'.join(lines))

"""Sizes MixMAE's decoder and head take from its encoder.

The decoder's input width (``in_channels``), its position grid (``img_size`` /
``encoder_stride``) and the head's ``patch_size`` are all fixed by the encoder: the last-stage
width, the pretraining image size and the encoder's total stride (32 for Swin).  A config
therefore need not state them; one that does must agree, or the build stops naming both
values.
"""
from typing import Any, Dict, Tuple, Union

import torch.nn as nn

__all__ = ['encoder_sizes', 'derive_decoder_cfg', 'derive_head_cfg', 'check_built_sizes',
           'check_no_shift']


def _pair(v: Union[int, Tuple[int, int], list]) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def encoder_sizes(backbone: nn.Module) -> Dict[str, Any]:
    """``{'in_channels': C_last, 'img_size': (H, W), 'encoder_stride': s}`` of a built
    ``MixMAESwin``."""
    return dict(in_channels=int(backbone.num_features[-1]), img_size=tuple(backbone.img_size),
                encoder_stride=int(backbone.encoder_stride))


def _agree(section: str, key: str, stated: Any, source: str, derived: Any) -> None:
    norm = _pair(stated) if key == 'img_size' else stated
    if norm != derived:
        raise ValueError(f'MixMAE: {section}.{key}={stated!r} disagrees with {source}='
                         f'{derived!r}; drop {section}.{key} from the config (it is derived '
                         'from the backbone) or make them equal')


def derive_decoder_cfg(neck: dict, backbone: nn.Module) -> dict:
    """A copy of the decoder config with ``in_channels``, ``img_size`` and ``encoder_stride``
    filled from ``backbone``; a stated value that differs raises ``ValueError``."""
    sizes = encoder_sizes(backbone)
    sources = dict(in_channels='backbone.num_features[-1] (last-stage width)',
                   img_size='backbone.img_size', encoder_stride='backbone.encoder_stride')
    neck = dict(neck)
    for key, value in sizes.items():
        if key in neck:
            _agree('neck', key, neck[key], sources[key], value)
        neck[key] = value
    return neck


def derive_head_cfg(head: dict, backbone: nn.Module) -> dict:
    """A copy of the head config with ``patch_size`` = the backbone's encoder stride."""
    stride = int(backbone.encoder_stride)
    head = dict(head)
    if 'patch_size' in head:
        _agree('head', 'patch_size', head['patch_size'], 'backbone.encoder_stride', stride)
    head['patch_size'] = stride
    return head


def check_built_sizes(neck: nn.Module, head: nn.Module, backbone: nn.Module) -> None:
    """The same agreement for a decoder / head passed already built."""
    sizes = encoder_sizes(backbone)
    grid = (sizes['img_size'][0] // sizes['encoder_stride'],
            sizes['img_size'][1] // sizes['encoder_stride'])
    if hasattr(neck, 'decoder_embed'):
        _agree('neck', 'in_channels', neck.decoder_embed.in_features,
               'backbone.num_features[-1] (last-stage width)', sizes['in_channels'])
    if hasattr(neck, 'grid'):
        _agree('neck', 'grid', tuple(neck.grid), 'backbone.img_size / encoder_stride', grid)
    if hasattr(head, 'patch_size'):
        _agree('head', 'patch_size', head.patch_size, 'backbone.encoder_stride',
               sizes['encoder_stride'])


def check_no_shift(backbone: nn.Module) -> None:
    """Pretraining keeps the two mixed images apart with the isolation pattern; shifted
    windows would replace that pattern, so a shifting backbone is refused."""
    if getattr(backbone, 'shift_window', False):
        raise ValueError('MixMAE: backbone.shift_window=True cannot be pretrained: the shifted-'
                         'window pattern would replace the attention isolation of the two '
                         'mixed images; shifted windows are for dense fine-tuning only')

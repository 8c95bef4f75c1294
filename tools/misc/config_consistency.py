"""Consistency of a MixMAE config's sizes, checked on the config and its built model.

    python tools/misc/config_consistency.py CONFIG [CONFIG ...]

Checks, each failing with :class:`ConfigConsistencyError` that names both disagreeing fields:

* encoder width vs the pretraining decoder's ``in_channels``, the classifier head's
  ``in_channels``, the detector neck's (FPN) ``in_channels`` and the segmentor's decode /
  auxiliary heads' ``in_channels`` (per ``in_index``);
* the backbone's ``img_size`` vs the decoder's position grid (``img_size / encoder_stride``),
  and vs the crop size of the training / test pipelines (pretraining and classification);
* the encoder stride vs the pretraining head's ``patch_size``;
* every stated window size vs its stage grid at the backbone's ``img_size`` (a window larger
  than its grid would be silently clamped).
"""
import argparse
import sys
from typing import Any, Iterable, List, Sequence, Tuple

import torch.nn as nn


class ConfigConsistencyError(ValueError):
    """Two fields of one config disagree."""


def _fail(a: str, va: Any, b: str, vb: Any, why: str) -> None:
    raise ConfigConsistencyError(f'{a}={va!r} disagrees with {b}={vb!r}: {why}')


def _as_list(v: Any) -> List[int]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def check_windows(cfg_backbone: dict, backbone: nn.Module) -> None:
    """Each stated ``window_size[i]`` must fit (and divide) the stage grid ``i``."""
    stated = cfg_backbone.get('window_size')
    if stated is None:
        return
    for i, (win, grid) in enumerate(zip(stated, backbone.stage_grids)):
        if win > min(grid) or grid[0] % win or grid[1] % win:
            _fail(f'model.backbone.window_size[{i}]', win, f'stage {i} grid at '
                  'model.backbone.img_size', f'{grid[0]}x{grid[1]} ({tuple(backbone.img_size)})',
                  'a window must divide its stage grid and not exceed it')


def _widths(backbone: nn.Module) -> List[int]:
    return [int(c) for c in backbone.num_features]


def check_pretrain(model: nn.Module) -> None:
    """MixMAE: decoder input width / grid and head patch size against the encoder."""
    bb, neck, head = model.backbone, model.neck, model.head
    width = _widths(bb)[-1]
    if neck.decoder_embed.in_features != width:
        _fail('model.neck.in_channels', neck.decoder_embed.in_features,
              'backbone last-stage width (model.backbone.arch embed_dims x 8)', width,
              'the decoder reads the final encoder tokens')
    stride = int(bb.encoder_stride)
    grid = (bb.img_size[0] // stride, bb.img_size[1] // stride)
    if tuple(neck.grid) != grid:
        _fail('model.neck.img_size / encoder_stride (grid)', tuple(neck.grid),
              'model.backbone.img_size / stride', grid, 'one decoder position per latent token')
    if head.patch_size != stride:
        _fail('model.head.patch_size', head.patch_size, 'backbone encoder stride', stride,
              'each latent token reconstructs one stride x stride patch')


def check_classifier(model: nn.Module) -> None:
    bb = model.backbone
    width = _widths(bb)[bb.out_indices[-1]]
    if getattr(model.head, 'in_channels', width) != width:
        _fail('model.head.in_channels', model.head.in_channels,
              f'backbone width of stage {bb.out_indices[-1]} (model.backbone.arch)', width,
              'the head reads the pooled last-stage features')


def check_dense_inputs(name: str, in_channels: Any, in_index: Any, feats: Sequence[int],
                       out_indices: Sequence[int]) -> None:
    """``in_channels`` of a neck/head (with its ``in_index``) against the backbone outputs."""
    chans = _as_list(in_channels)
    index = list(range(len(feats))) if in_index is None else _as_list(in_index)
    if len(chans) != len(index):
        _fail(f'{name}.in_channels', chans, f'{name}.in_index', index, 'one width per input')
    for c, i in zip(chans, index):
        if not 0 <= i < len(feats):
            _fail(f'{name}.in_index', i, 'model.backbone.out_indices', list(out_indices),
                  'index outside the backbone outputs')
        if c != feats[i]:
            _fail(f'{name}.in_channels', chans, 'backbone output widths (out_indices '
                  f'{list(out_indices)})', list(feats), f'input {i} has {feats[i]} channels')


def check_detector(model: nn.Module) -> None:
    bb = model.backbone
    feats = [_widths(bb)[i] for i in bb.out_indices]
    neck = model.neck
    check_dense_inputs('model.neck', neck.in_channels, None, feats, bb.out_indices)


def check_segmentor(model: nn.Module) -> None:
    bb = model.backbone
    feats = [_widths(bb)[i] for i in bb.out_indices]
    heads = [('model.decode_head', model.decode_head)]
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None:
        heads += [(f'model.auxiliary_head[{k}]' if isinstance(aux, nn.ModuleList) else
                   'model.auxiliary_head', h)
                  for k, h in enumerate(aux if isinstance(aux, nn.ModuleList) else [aux])]
    for name, head in heads:
        check_dense_inputs(name, head.in_channels, head.in_index, feats, bb.out_indices)


def _crop_sizes(pipeline: Iterable[dict]) -> List[Tuple[str, int]]:
    out = []
    for t in pipeline or []:
        if t.get('type') == 'RandomResizedCrop':
            out.append(('RandomResizedCrop.scale', t.get('scale')))
        elif t.get('type') == 'CenterCrop':
            out.append(('CenterCrop.crop_size', t.get('crop_size')))
    return out


def check_pipeline_size(cfg, backbone: nn.Module) -> None:
    """Image-level pipelines (pretraining, classification) crop to the backbone's size."""
    size = tuple(backbone.img_size)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = (cfg.get(loader) or {}).get('dataset', {}).get('pipeline')
        for field, value in _crop_sizes(pipeline):
            if value is not None and tuple(_as_list(value) * (2 if isinstance(value, int)
                                                              else 1)) != size:
                _fail(f'{loader}.dataset.pipeline {field}', value, 'model.backbone.img_size',
                      size, 'the position embedding and windows are built for that size')


def check_consistency(cfg, model: nn.Module) -> str:
    """Run every check that applies; returns the model family checked."""
    backbone = model.backbone
    check_windows(cfg.model.backbone, backbone)
    if hasattr(model, 'decode_head'):
        check_segmentor(model)
        return 'segmentor'
    if hasattr(model, 'roi_head') or hasattr(model, 'rpn_head'):
        check_detector(model)
        return 'detector'
    check_pipeline_size(cfg, backbone)
    if hasattr(model, 'neck') and hasattr(model.neck, 'decoder_embed'):
        check_pretrain(model)
        return 'pretrain'
    check_classifier(model)
    return 'classifier'


def build_model(cfg) -> nn.Module:
    """Build ``cfg.model`` in the config's scope (imports ``custom_imports`` first)."""
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmengine')
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


def main(argv=None) -> int:
    from mmengine.config import Config
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    args = parser.parse_args(argv)
    for path in args.configs:
        cfg = Config.fromfile(path)
        family = check_consistency(cfg, build_model(cfg))
        print(f'{path}: consistent ({family})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

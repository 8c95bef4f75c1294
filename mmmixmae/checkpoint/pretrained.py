"""``init_cfg=dict(type='Pretrained', ...)`` for backbones: validate all, then copy.

:func:`load_pretrained_backbone` takes the backbone module it loads into and never imports
a model class.  The module provides ``adapt_state_dict(state_dict) -> state_dict`` (for
:class:`~mmmixmae.models.MixMAESwin`: interpolate ``absolute_pos_embed`` and the
relative-position tables to its grid and windows, drop ``relative_position_index``), the
same function its ``load_state_dict`` pre-hook uses, so both paths adapt identically.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Tuple

import torch.nn as nn
from mmengine.logging import print_log

from .errors import CheckpointMismatchError, InvalidCheckpointError
from .io import read_checkpoint
from .report import LoadReport, fmt_shape, format_load_report
from .state_dict import DENSE_NORM, StateDict, find_state_dict

__all__ = ['load_pretrained_backbone', 'PRETRAINED_KEYS']

#: the keys ``init_cfg`` of type Pretrained accepts
PRETRAINED_KEYS = frozenset({'type', 'checkpoint', 'prefix', 'map_location'})
#: keys an official / unprefixed checkpoint may carry for modules other than the encoder
_UNPREFIXED_OTHER = re.compile(r'(decoder_.+|mask_token|head\..+|neck\..+)')
_REL_INDEX = re.compile(r'(.+\.)?relative_position_index')
_MMPRETRAIN_NAMES = re.compile(r'(patch_embed\.projection|\.ln[12]\.|\.ffn\.layers\.)')


def _may_be_missing(key: str) -> bool:
    """Backbone keys a checkpoint may legitimately lack: the LayerNorms ``norm{i}`` of extra
    dense outputs (a pretraining / classification checkpoint has only the final ``norm``)."""
    return DENSE_NORM.fullmatch(key) is not None


def _check_init_cfg(init_cfg: dict) -> Tuple[str, str]:
    extra = sorted(set(init_cfg) - PRETRAINED_KEYS)
    if extra:
        raise ValueError(f'init_cfg of type Pretrained takes {sorted(PRETRAINED_KEYS)}; '
                         f'unknown {extra}')
    path = init_cfg.get('checkpoint')
    if not path:
        raise ValueError('init_cfg=Pretrained needs a checkpoint path; set '
                         'model.backbone.init_cfg.checkpoint (e.g. --cfg-options '
                         'model.backbone.init_cfg.checkpoint=PATH)')
    return str(path), init_cfg.get('prefix') or ''


def _select(state_dict: StateDict, prefix: str, report: LoadReport) -> StateDict:
    """The backbone's entries; everything else is recorded as dropped."""
    selected: StateDict = OrderedDict()
    use_prefix = bool(prefix) and any(k.startswith(prefix) for k in state_dict)
    for k, v in state_dict.items():
        if use_prefix:
            if k.startswith(prefix):
                selected[k[len(prefix):]] = v
            else:
                report.dropped_other.append(k)
        elif _UNPREFIXED_OTHER.fullmatch(k):
            report.dropped_other.append(k)
        else:
            selected[k] = v
    for k in [k for k in selected if _REL_INDEX.fullmatch(k)]:
        report.dropped_rebuilt.append(k)
        del selected[k]
    return selected


def _mismatch_hint(state_dict: StateDict, prefix: str, unexpected) -> str:
    hint = ''
    if prefix and not any(k.startswith(prefix) for k in state_dict):
        hint = (f'(no key starts with prefix {prefix!r}; the keys were read as an '
                'unprefixed backbone state dict)')
    elif not prefix and any(k.startswith('backbone.') for k in state_dict):
        hint = "the keys start with 'backbone.': set prefix='backbone.' in init_cfg"
    if any(_MMPRETRAIN_NAMES.search(k) for k in unexpected):
        hint += ('\nthis looks like an mmpretrain MixMIM checkpoint: convert it with '
                 'tools/model_converters/mmpretrain_mixmim_to_mmmixmae.py')
    return hint.strip()


def load_pretrained_backbone(backbone: nn.Module, init_cfg: dict) -> LoadReport:
    """Load ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``.

    * The checkpoint is read weights-only (:func:`~mmmixmae.checkpoint.io.read_checkpoint`);
      mmengine (``state_dict``), official (``model``) and bare state dicts are accepted.
    * With a ``prefix``, the keys under it are taken and every other key (decoder
      ``neck.*``, ``head.*``, ...) is dropped and counted.  If **no** key has the prefix,
      the checkpoint is read as an unprefixed (official or bare backbone) state dict:
      decoder keys (``decoder_*``, the decoder's ``mask_token``), ``head.*`` and ``neck.*``
      are dropped and everything else must be a backbone key.
    * ``relative_position_index`` entries are dropped (rebuilt from the window); then
      ``backbone.adapt_state_dict`` adapts the rest (interpolation to this model's grid).
    * Then the load is strict: a missing backbone key (except the dense ``norm{i}``
      LayerNorms, reported as newly initialized), an unexpected key or a shape mismatch
      raises :class:`CheckpointMismatchError` listing all of them, before any weight is
      copied.

    Returns:
        :class:`~mmmixmae.checkpoint.report.LoadReport`; the same is logged as a table.
    """
    path, prefix = _check_init_cfg(init_cfg)
    checkpoint = read_checkpoint(path, init_cfg.get('map_location', 'cpu'))
    try:
        state_dict, fmt = find_state_dict(checkpoint, path)
    except InvalidCheckpointError as err:
        raise CheckpointMismatchError(path, hint=str(err)) from None
    report = LoadReport(path=path, format=fmt, prefix=prefix)
    selected = _select(state_dict, prefix, report)

    before = {k: tuple(v.shape) for k, v in selected.items()}
    try:
        adapted = backbone.adapt_state_dict(selected)
    except ValueError as err:
        raise CheckpointMismatchError(path, hint=f'cannot interpolate: {err}') from None
    report.interpolated = [f'{k} {fmt_shape(before[k])}->{fmt_shape(adapted[k].shape)}'
                           for k in adapted if k in before and tuple(adapted[k].shape) != before[k]]

    model_state = backbone.state_dict()
    missing = [k for k in model_state if k not in adapted]
    unexpected = [k for k in adapted if k not in model_state]
    mismatched = [(k, tuple(adapted[k].shape), tuple(model_state[k].shape)) for k in adapted
                  if k in model_state and adapted[k].shape != model_state[k].shape]
    report.newly_initialized = [k for k in missing if _may_be_missing(k)]
    missing = [k for k in missing if not _may_be_missing(k)]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(path, missing, unexpected, mismatched,
                                      _mismatch_hint(state_dict, prefix, unexpected))

    # the pre-hook sees already adapted tensors: adapting again changes nothing
    result = backbone.load_state_dict(adapted, strict=False)
    if sorted(result.missing_keys) != sorted(report.newly_initialized) or \
            result.unexpected_keys:  # pragma: no cover - guarded by the checks above
        raise RuntimeError(f'load_state_dict disagreed with the pre-check: {result}')
    report.loaded = list(adapted)
    print_log(format_load_report(report, type(backbone).__name__), logger='current')
    return report

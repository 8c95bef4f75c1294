"""Finding the state dict inside a checkpoint, and revising its keys.

Every reader of weights in mmmixmae (the ``init_cfg`` loader, the converters, the tools and
:class:`~mmmixmae.engine.hooks.ExactResumeHook`) goes through :func:`find_state_dict` and
:func:`revise_keys`, so a checkpoint is read the same way wherever it enters.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Sequence, Tuple

import torch

from .errors import InvalidCheckpointError

__all__ = ['StateDict', 'DENSE_NORM', 'STATE_DICT_ENTRIES', 'find_state_dict', 'revise_keys', 'strip_prefix']

StateDict = Dict[str, torch.Tensor]

#: top-level entry -> format name, tried in this order
STATE_DICT_ENTRIES: Tuple[Tuple[str, str], ...] = (
    ('state_dict', 'mmengine'),  # Runner checkpoints
    ('model', 'official'),  # Sense-X/MixMIM main_*.py
    ('module', 'module'),  # DeepSpeed-style wrappers
)

#: the LayerNorms ``norm{i}`` a backbone adds for extra dense outputs
DENSE_NORM = re.compile(r'norm(\d+)\.(weight|bias)$')

#: default key revision: drop the ``module.`` of (Distributed)DataParallel
DDP_PREFIX: Tuple[Tuple[str, str], ...] = ((r'^module\.', ''), )


def find_state_dict(checkpoint: Any, path: str = '<checkpoint>') -> Tuple[StateDict, str]:
    """Return ``(state_dict, format)`` of a loaded checkpoint.

    ``format`` is ``'mmengine'`` (``checkpoint['state_dict']``), ``'official'``
    (``checkpoint['model']``), ``'module'`` (``checkpoint['module']``) or ``'bare'`` (the
    file is a state dict).  The dict's ``_metadata`` (module versions) is kept.

    Raises:
        InvalidCheckpointError: not a dict, empty, or with entries that are not tensors
            (the message names the file, the entry and the first keys).
    """
    if not isinstance(checkpoint, dict):
        raise InvalidCheckpointError(
            f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict', path)
    for key, fmt in STATE_DICT_ENTRIES:
        if isinstance(checkpoint.get(key), dict):
            state_dict, where = checkpoint[key], f"{path}['{key}']"
            break
    else:
        state_dict, fmt, where = checkpoint, 'bare', path
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if not state_dict or not_tensors:
        shown = ', '.join(repr(k) for k in list(state_dict)[:12])
        raise InvalidCheckpointError(
            f'{where} is not a state dict: '
            + (f'entries {not_tensors[:12]} are not tensors (top-level keys: {shown})'
               if not_tensors else 'it is empty'), path)
    out = OrderedDict(state_dict)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out, fmt


def revise_keys(state_dict: StateDict,
                rules: Sequence[Tuple[str, str]] = DDP_PREFIX) -> StateDict:
    """Apply ``re.sub(pattern, repl, key)`` for every ``(pattern, repl)`` to every key.

    The default drops a leading ``module.`` (mmengine's ``revise_keys`` default).  Two keys
    that become the same raise :class:`InvalidCheckpointError`; ``_metadata`` is kept.
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = OrderedDict()
    for key, value in state_dict.items():
        new = key
        for pattern, repl in compiled:
            new = pattern.sub(repl, new)
        if new in out:
            raise InvalidCheckpointError(
                f'keys {key!r} and another one both become {new!r} after revising '
                f'{[p for p, _ in rules]}', '<state dict>')
        out[new] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            (_revise_one(k, compiled), v) for k, v in metadata.items())
    return out


def _revise_one(key: str, compiled) -> str:
    for pattern, repl in compiled:
        key = pattern.sub(repl, key)
    return key


def strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix``, with the prefix removed (others are left out)."""
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                       if k.startswith(prefix))

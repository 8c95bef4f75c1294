"""Command-line overrides that take effect, or are refused.

* :func:`check_override_keys` -- every dotted ``--cfg-options`` key must already exist
  in the config (``--allow-new-keys`` opts out); an unknown key is refused in one line
  naming it and its closest existing key.
* :func:`set_pretrained` -- ``--pretrained CKPT`` (and ``--cfg-options pretrained=CKPT``)
  sets the backbone checkpoint of a transfer config. The configs write the path once in
  a top-level ``pretrained`` variable, which mmengine substitutes into
  ``model.backbone.init_cfg.checkpoint`` when the file is parsed; overriding the variable
  afterwards would change nothing, so the override is carried to every ``Pretrained``
  ``init_cfg`` under ``model`` that holds the config's own path.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterator, Mapping, Optional

__all__ = ['OverrideError', 'check_override_keys', 'set_pretrained', 'pretrained_init_cfgs']


class OverrideError(ValueError):
    """A command-line override that cannot take effect."""


def _children(node: Any) -> Optional[list[str]]:
    if isinstance(node, Mapping):
        return [str(k) for k in node.keys()]
    if isinstance(node, (list, tuple)):
        return [str(i) for i in range(len(node))]
    return None


def _child(node: Any, part: str) -> Any:
    if isinstance(node, Mapping):
        return node[part]
    return node[int(part)]


def missing_key(cfg: Mapping, key: str) -> Optional[str]:
    """None when ``key`` (dotted) exists in ``cfg``; else the closest existing key."""
    node: Any = getattr(cfg, '_cfg_dict', cfg)  # an mmengine Config wraps a ConfigDict
    parts = key.split('.')
    for depth, part in enumerate(parts):
        names = _children(node)
        prefix = '.'.join(parts[:depth])
        if names is None:
            return prefix  # the parent is a value (str, number, None), not a dict/list
        if part in names:
            node = _child(node, part)
            continue
        close = difflib.get_close_matches(part, names, n=1, cutoff=0.0)
        guess = '.'.join(p for p in (prefix, close[0] if close else '') if p)
        return '.'.join([guess] + parts[depth + 1:]) if close else (prefix or '<top level>')
    return None


def check_override_keys(cfg: Mapping, cfg_options: Optional[Mapping[str, Any]]) -> None:
    """Raise :class:`OverrideError` for the first ``--cfg-options`` key not in ``cfg``."""
    for key in (cfg_options or {}):
        closest = missing_key(cfg, key)
        if closest is not None:
            raise OverrideError(
                f"--cfg-options key '{key}' does not exist in the config (closest existing "
                f"key: '{closest}'); check the spelling, or pass --allow-new-keys to add it")


def pretrained_init_cfgs(node: Any, path: str = 'model') -> Iterator[tuple[str, dict]]:
    """``(dotted path, init_cfg)`` of every ``type='Pretrained'`` init_cfg under ``node``."""
    if isinstance(node, Mapping):
        init = node.get('init_cfg')
        inits = init if isinstance(init, (list, tuple)) else [init]
        for i, item in enumerate(inits):
            if isinstance(item, Mapping) and item.get('type') == 'Pretrained':
                where = f'{path}.init_cfg' + (f'.{i}' if isinstance(init, (list, tuple)) else '')
                yield where, item  # type: ignore[misc]
        for key, value in node.items():
            if key != 'init_cfg':
                yield from pretrained_init_cfgs(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pretrained_init_cfgs(value, f'{path}.{i}')


def set_pretrained(cfg: Any, checkpoint: str, original: Optional[str]) -> list[str]:
    """Point the config's pretrained backbone at ``checkpoint``.

    Args:
        cfg: the loaded config (mmengine ``Config`` or a dict), changed in place.
        checkpoint: the new path.
        original: the config file's own ``pretrained`` value before any override.
    Returns:
        The dotted paths of the ``init_cfg`` entries that now load ``checkpoint``.
    Raises:
        OverrideError: the config has no ``Pretrained`` init_cfg holding its ``pretrained``
            path (it is not a pretraining-to-transfer config).
    """
    changed = []
    for where, init in pretrained_init_cfgs(cfg.get('model')):
        if original is None or init.get('checkpoint') in (original, checkpoint):
            init['checkpoint'] = checkpoint
            changed.append(where)
    if not changed:
        raise OverrideError(
            '--pretrained: the config has no model init_cfg of type Pretrained that loads its '
            f"'pretrained' path ({original!r}); set the key directly, e.g. "
            f'--cfg-options model.backbone.init_cfg.checkpoint={checkpoint}')
    cfg['pretrained'] = checkpoint
    return changed

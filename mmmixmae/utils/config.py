"""The one config loader of the tools: read, merge overrides, check what is required."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

from .errors import UserError

__all__ = ['check_file', 'load_config']


def check_file(path: str, what: str) -> str:
    """``path`` (``~`` expanded) if it is a file, else :class:`UserError` naming ``what``."""
    full = osp.expanduser(path)
    if osp.isdir(full):
        raise UserError(f'{what} {path} is a directory, expected a file')
    if not osp.isfile(full):
        raise UserError(f'{what} not found: {path}')
    return full


def load_config(path: str, cfg_options: Optional[dict] = None,
                require: Sequence[str] = ('model', ), allow_new_keys: bool = False,
                pretrained: Optional[str] = None):
    """Load an mmengine config, merge ``cfg_options``, check that ``require`` keys are dicts.

    Args:
        cfg_options: ``--cfg-options`` overrides; a key the config does not have is refused
            (naming it and its closest existing key) unless ``allow_new_keys``.
        pretrained: ``--pretrained CKPT``; it (and a ``pretrained=CKPT`` override) reaches
            every ``Pretrained`` init_cfg that held the config's own ``pretrained`` path.

    Raises:
        UserError: the file is missing, cannot be parsed (syntax error, missing ``_base_``;
            the message keeps the parser's), an override key is unknown, or a required key
            is missing.
    """
    from mmengine.config import Config

    from .cfg_overrides import OverrideError, check_override_keys, set_pretrained
    full = check_file(path, 'config file')
    try:
        cfg = Config.fromfile(full)
    except Exception as err:  # syntax errors, missing bases ...
        raise UserError(f'cannot read config {path}: {type(err).__name__}: {err}') from None
    original_pretrained = cfg.get('pretrained')
    try:
        if cfg_options and not allow_new_keys:
            check_override_keys(cfg, cfg_options)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if cfg_options and 'pretrained' in cfg_options:
            set_pretrained(cfg, cfg_options['pretrained'], original_pretrained)
        if pretrained:
            set_pretrained(cfg, check_file(pretrained, '--pretrained checkpoint'),
                           original_pretrained)
    except OverrideError as err:
        raise UserError(str(err)) from None
    for key in require:
        if not isinstance(cfg.get(key), dict):
            raise UserError(f'config {path} defines no "{key}"')
    return cfg

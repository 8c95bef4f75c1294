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
                require: Sequence[str] = ('model', )):
    """Load an mmengine config, merge ``cfg_options``, check that ``require`` keys are dicts.

    Raises:
        UserError: the file is missing, cannot be parsed (syntax error, missing ``_base_``;
            the message keeps the parser's), or lacks a required key.
    """
    from mmengine.config import Config
    full = check_file(path, 'config file')
    try:
        cfg = Config.fromfile(full)
    except Exception as err:  # syntax errors, missing bases ...
        raise UserError(f'cannot read config {path}: {type(err).__name__}: {err}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in require:
        if not isinstance(cfg.get(key), dict):
            raise UserError(f'config {path} defines no "{key}"')
    return cfg

"""Check a config's ``required_data`` before anything is built.

The CPU toy configs declare the sample data they read::

    required_data = dict(key='train_dataloader.dataset.data_root',
                         must_hold=['annotations.json', 'JPEGImages'],
                         source='where the sample data comes from')

(``must_hold`` may be empty: then the folder must exist, and ``describe`` says what it holds.)

``key`` names the config entry that holds the folder, so the check follows a
``--cfg-options train_dataloader.dataset.data_root=...`` override (``folder=`` gives the
folder itself).

:func:`check_required_data` raises :class:`MissingDataError` naming the folder, what it
must hold, the ``MMMIXMAE_DATA`` switch and the source, instead of a file-not-found error
from deep inside a dataset with a path relative to wherever the run was launched.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Mapping, Optional

__all__ = ['MissingDataError', 'check_required_data']


class MissingDataError(FileNotFoundError):
    """The sample data a config needs is not where the config looks."""


def _lookup(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node


def check_required_data(required: Optional[Mapping[str, Any]], cfg: Any = None) -> None:
    """Raise :class:`MissingDataError` when the folder (``required['folder']``, or the
    entry ``required['key']`` of ``cfg``) lacks one of ``required['must_hold']``."""
    if not required:
        return
    folder = str(required['folder'] if 'folder' in required else _lookup(cfg, required['key']))
    must_hold = list(required.get('must_hold', []))
    missing = [m for m in must_hold if not osp.exists(osp.join(folder, m))]
    if osp.isdir(folder) and not missing:
        return
    what = 'does not exist' if not osp.isdir(folder) else f'lacks {", ".join(missing)}'
    raise MissingDataError(
        f'data folder {folder} {what}: it must hold '
        f'{", ".join(must_hold) or required.get("describe", "the data")}. Set MMMIXMAE_DATA '
        f'to the folder that holds the sample data (default: ../shared/data next to the '
        f'repository); the data is {required.get("source", "described in the config")}')

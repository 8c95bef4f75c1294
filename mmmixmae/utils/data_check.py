"""Check a config's ``required_data`` before anything is built.

The CPU toy configs declare the sample data they read::

    required_data = dict(folder=data_root, must_hold=['annotations.json', 'JPEGImages'],
                         source='where the sample data comes from')

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


def check_required_data(required: Optional[Mapping[str, Any]]) -> None:
    """Raise :class:`MissingDataError` when ``required['folder']`` lacks an entry."""
    if not required:
        return
    folder = str(required['folder'])
    must_hold = list(required.get('must_hold', []))
    missing = [m for m in must_hold if not osp.exists(osp.join(folder, m))]
    if osp.isdir(folder) and not missing:
        return
    what = 'does not exist' if not osp.isdir(folder) else f'lacks {", ".join(missing)}'
    raise MissingDataError(
        f'data folder {folder} {what}: it must hold {", ".join(must_hold)}. Set MMMIXMAE_DATA '
        f'to the folder that holds the sample data (default: ../shared/data next to the '
        f'repository); the data is {required.get("source", "described in the config")}')

"""mmengine's local-file checkpoint loader reads through the safe loader.

mmengine 0.10.7 loads every plain path of resume / ``load_from`` / ``init_cfg=Pretrained``
with ``CheckpointLoader`` scheme ``''``, which calls ``torch.load`` without
``weights_only``.  torch >= 2.6 then refuses the ``HistoryBuffer`` in every Runner
checkpoint, with advice to turn ``weights_only`` off.  This patch re-registers scheme
``''`` to :func:`mmmixmae.checkpoint.io.load_checkpoint_safely`, which keeps
``weights_only=True``, installs the allowlist of :mod:`mmmixmae.checkpoint.io` and reports
a refused or broken file by name.
"""
from __future__ import annotations

from ..checkpoint.io import install_safe_globals, load_checkpoint_safely
from ._guard import MARK, check_versions

__all__ = ['SUPPORTED', 'apply']

#: the versions this patch was written and tested for
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))


def _load_from_local(filename, map_location):
    """mmengine ``CheckpointLoader`` scheme ``''`` (local paths), read weights-only."""
    return load_checkpoint_safely(filename, map_location=map_location)


setattr(_load_from_local, MARK, True)


def apply() -> None:
    """Install the allowlist and register the safe local loader (idempotent)."""
    check_versions(__name__, SUPPORTED)
    install_safe_globals()
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader._schemes.get('')
    if getattr(current, MARK, False):
        return
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)

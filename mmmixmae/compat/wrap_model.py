"""``Runner.wrap_model`` without CUDA.

With a launcher, the Runner wraps the model in ``MMDistributedDataParallel``
with ``device_ids=[LOCAL_RANK]`` (both when ``model_wrapper_cfg`` is None
and as a default argument otherwise); DDP refuses ``device_ids`` for a CPU
module.  When the Runner is distributed and CUDA is not available, the
patched ``wrap_model`` passes an explicit ``device_ids=None`` (a default
argument never overrides an explicit one) and, for ``model_wrapper_cfg=None``,
the same settings mmengine would use (``broadcast_buffers=False``,
``find_unused_parameters`` from the config).  User-given ``device_ids`` and
non-DDP wrappers are left alone.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch

from ._guard import MARK, check_versions

__all__ = ['SUPPORTED', 'apply']

#: the versions this patch was written and tested for
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))


def _no_cuda() -> bool:
    return not torch.cuda.is_available()


def apply() -> None:
    """Replace ``Runner.wrap_model`` by the CPU-aware version (idempotent)."""
    check_versions(__name__, SUPPORTED)
    from mmengine.model import is_model_wrapper
    from mmengine.registry import MODEL_WRAPPERS
    from mmengine.runner import Runner
    from torch.nn.parallel import DistributedDataParallel

    original = Runner.wrap_model
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def wrap_model(self, model_wrapper_cfg: Optional[dict], model):
        if (self.distributed and _no_cuda() and not is_model_wrapper(model)):
            if model_wrapper_cfg is None:
                model_wrapper_cfg = dict(
                    type='MMDistributedDataParallel',
                    broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get(
                        'find_unused_parameters', False))
            else:
                model_wrapper_cfg = model_wrapper_cfg.copy()
            wrapper_type = model_wrapper_cfg.get('type',
                                                 'MMDistributedDataParallel')
            if isinstance(wrapper_type, str):
                wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
            if (isinstance(wrapper_type, type)
                    and issubclass(wrapper_type, DistributedDataParallel)):
                model_wrapper_cfg.setdefault('device_ids', None)
        return original(self, model_wrapper_cfg, model)

    setattr(wrap_model, MARK, True)
    Runner.wrap_model = wrap_model

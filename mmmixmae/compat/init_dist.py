"""``init_dist`` without CUDA (``--launcher pytorch|slurm|mpi`` on CPU).

``mmengine.dist.utils._init_dist_pytorch`` (and the slurm and mpi
variants) call ``torch.cuda.set_device`` unconditionally, which raises
"Found no NVIDIA driver" on a CPU host; and the Runner's default
``env_cfg.dist_cfg.backend`` is ``'nccl'``, which needs GPUs.  When CUDA is
not available the three functions are wrapped so that ``set_device`` is a
no-op for the duration of the call and a requested ``'nccl'`` backend
becomes ``'gloo'`` (with a warning).  Only on hosts that really have no GPU:
when ``/dev/nvidia<N>`` or ``nvidia-smi`` show GPUs that torch cannot use,
:func:`mmmixmae.utils.gpu_presence.refuse_hidden_gpus` stops the run instead.  The functions are looked up as module
globals by ``mmengine.dist.utils.init_dist``, so replacing them there is
enough.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Callable, Iterator

import torch

from ._guard import MARK, check_versions

__all__ = ['SUPPORTED', 'apply']

#: the versions this patch was written and tested for
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))


def _no_cuda() -> bool:
    return not torch.cuda.is_available()


@contextlib.contextmanager
def _cuda_set_device_disabled() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block (CPU hosts
    only; restored on exit)."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _cpu_safe_init(init_fn: Callable) -> Callable:

    @functools.wraps(init_fn)
    def wrapper(backend, *args, **kwargs):
        if not _no_cuda():
            return init_fn(backend, *args, **kwargs)
        from ..utils.gpu_presence import refuse_hidden_gpus
        refuse_hidden_gpus()  # GPUs present but unusable: stop, never train on CPU quietly
        if backend == 'nccl':
            warnings.warn(
                'mmmixmae.compat: CUDA is not available, using the gloo '
                "distributed backend instead of 'nccl'", stacklevel=2)
            backend = 'gloo'
        with _cuda_set_device_disabled():
            return init_fn(backend, *args, **kwargs)

    setattr(wrapper, MARK, True)
    return wrapper


def apply() -> None:
    """Wrap mmengine's three ``_init_dist_*`` functions (idempotent)."""
    check_versions(__name__, SUPPORTED)
    from mmengine.dist import utils as dist_utils
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        fn = getattr(dist_utils, name, None)
        if fn is not None and not getattr(fn, MARK, False):
            setattr(dist_utils, name, _cpu_safe_init(fn))

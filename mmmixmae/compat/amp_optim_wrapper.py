"""``AmpOptimWrapper`` on CPU (``tools/train.py --amp``).

mmengine's ``AmpOptimWrapper.__init__`` asserts that CUDA/NPU/MLU/MUSA is
available, although mmengine's ``autocast`` supports CPU with bfloat16.
With no accelerator, the patched ``__init__`` accepts only
``dtype='bfloat16'`` (the default there; CPU autocast does not do float16)
and uses a disabled ``GradScaler``: bfloat16 has float32's exponent range,
so loss scaling is not needed, and a disabled scaler makes ``backward``,
``step`` and the ``loss_scaler`` state-dict entry plain pass-throughs.

The dtype rule itself is :func:`mmmixmae.utils.amp.cpu_amp_dtype`.  Whether bfloat16
autocast runs on this CPU is :func:`mmmixmae.utils.amp.cpu_autocast_dtype`'s choice: where
the CPU has no bf16 instructions, ``optim_context`` computes in float32 (logged once;
``MMMIXMAE_CPU_AMP=bf16`` forces autocast).  ``cast_dtype`` keeps the requested dtype.
"""
from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from ..utils.amp import cpu_amp_dtype, cpu_autocast_dtype
from ._guard import MARK, check_versions

__all__ = ['SUPPORTED', 'apply']

#: the versions this patch was written and tested for
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))


def _has_accelerator() -> bool:
    from mmengine import device
    return any(
        getattr(device, fn, lambda: False)()
        for fn in ('is_cuda_available', 'is_npu_available',
                   'is_mlu_available', 'is_musa_available'))


@contextlib.contextmanager
def _cpu_optim_context(wrapper, model):
    """``AmpOptimWrapper.optim_context`` on the CPU, with float32 where bf16 would be slow."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    if cpu_autocast_dtype(wrapper.cast_dtype) is None:
        with OptimWrapper.optim_context(wrapper, model):
            yield
    else:
        with AmpOptimWrapper.optim_context(wrapper, model):
            yield


def apply() -> None:
    """Replace ``AmpOptimWrapper.__init__`` by the CPU-aware version (idempotent)."""
    check_versions(__name__, SUPPORTED)
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    original = AmpOptimWrapper.__init__
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp=False,
                 **kwargs):
        if _has_accelerator():
            return original(self, loss_scale=loss_scale, dtype=dtype,
                            use_fsdp=use_fsdp, **kwargs)
        dtype = cpu_amp_dtype(dtype, 'optim_wrapper.dtype')
        if loss_scale != 'dynamic':
            warnings.warn(
                'mmmixmae.compat: loss_scale is ignored for bfloat16 AMP on '
                'CPU (no loss scaling is needed)', stacklevel=2)
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = dtype
        self.optim_context = functools.partial(_cpu_optim_context, self)

    setattr(__init__, MARK, True)
    AmpOptimWrapper.__init__ = __init__

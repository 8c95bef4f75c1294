"""The CPU automatic-mixed-precision rules, in one place.

CPU autocast does bfloat16 only, and bfloat16 has float32's exponent range, so no loss
scaling is needed.  ``tools/train.py --amp`` (:mod:`mmmixmae.utils.cli`) and the CPU
``AmpOptimWrapper`` (:mod:`mmmixmae.compat.amp_optim_wrapper`) both ask
:func:`cpu_amp_dtype`.

Whether bfloat16 autocast actually *runs* on a CPU is :func:`cpu_autocast_dtype`'s choice.
bfloat16 is only fast where the CPU has the instructions for it (oneDNN's bf16 kernels need
AVX-512 or Arm's BF16): there a MixMAE-B train step ran 2.2x faster than in float32.  On an
AVX2-only CPU (AMD Zen 2, measured) a bf16 matrix product was 6x *slower* than float32, so
AMP there computes in float32, which loses no accuracy.  ``MMMIXMAE_CPU_AMP`` overrides:
``auto`` (default), ``bf16`` (always autocast) or ``fp32`` (never).  The choice is logged once.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import torch

from .errors import UserError

__all__ = ['CPU_AMP_DTYPE', 'cpu_amp_dtype', 'cpu_has_native_bf16', 'cpu_autocast_dtype']

CPU_AMP_DTYPE = torch.bfloat16


def cpu_amp_dtype(dtype: Optional[Union[str, torch.dtype]], where: str = 'dtype') -> torch.dtype:
    """``torch.bfloat16`` for ``None``, ``'bfloat16'``, ``'torch.bfloat16'`` or the dtype.

    Raises:
        UserError: any other dtype (the message names ``where`` and the value).
    """
    if dtype is None:
        return CPU_AMP_DTYPE
    name = str(dtype).replace('torch.', '')
    if name != 'bfloat16':
        raise UserError(f'AMP on CPU supports only bfloat16 (CPU autocast does not do '
                        f'float16), but {where}={dtype}')
    return CPU_AMP_DTYPE


CPU_AMP_ENV = 'MMMIXMAE_CPU_AMP'
_LOGGED = []


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs oneDNN's bfloat16 kernels natively (AVX-512 or Arm BF16)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_autocast_dtype(requested: torch.dtype = CPU_AMP_DTYPE) -> Optional[torch.dtype]:
    """The dtype CPU autocast should use for a requested bfloat16 AMP, or None for float32.

    ``MMMIXMAE_CPU_AMP``: ``auto`` (bf16 where :func:`cpu_has_native_bf16`, else float32),
    ``bf16`` or ``fp32``.  Dtypes other than bfloat16 are returned unchanged.

    Raises:
        UserError: an unknown ``MMMIXMAE_CPU_AMP`` value (named with the valid ones).
    """
    if requested != torch.bfloat16:
        return requested
    mode = os.environ.get(CPU_AMP_ENV, 'auto').strip().lower() or 'auto'
    if mode not in ('auto', 'bf16', 'fp32'):
        raise UserError(f"{CPU_AMP_ENV}={mode!r}: use 'auto', 'bf16' or 'fp32'")
    native = cpu_has_native_bf16()
    use_bf16 = mode == 'bf16' or (mode == 'auto' and native)
    key = (mode, native)
    if key not in _LOGGED:
        from mmengine.logging import print_log
        why = (f'{CPU_AMP_ENV}={mode}' if mode != 'auto' else
               'this CPU has bf16 kernels' if native else
               'this CPU has no bf16 instructions (AVX2 only): bf16 autocast would be several '
               f'times slower than float32; {CPU_AMP_ENV}=bf16 forces it')
        print_log(f"AMP on the CPU computes in {'bfloat16' if use_bf16 else 'float32'} ({why})",
                  logger='current')
        _LOGGED.append(key)
    return torch.bfloat16 if use_bf16 else None

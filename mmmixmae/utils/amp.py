"""The CPU automatic-mixed-precision rule, in one place.

CPU autocast does bfloat16 only, and bfloat16 has float32's exponent range, so no loss
scaling is needed.  ``tools/train.py --amp`` (:mod:`mmmixmae.utils.cli`) and the CPU
``AmpOptimWrapper`` (:mod:`mmmixmae.compat.amp_optim_wrapper`) both ask
:func:`cpu_amp_dtype`.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import UserError

__all__ = ['CPU_AMP_DTYPE', 'cpu_amp_dtype']

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

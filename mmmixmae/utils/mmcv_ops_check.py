"""Stop at start when a config needs mmcv's CUDA ops that the installed mmcv lacks.

mmdet's Mask R-CNN runs mmcv's ``nms`` (RPN and box post-processing) and ``RoIAlign``
on the GPU tensors of a GPU run. An mmcv built with CPU ops only (the set-up's default
on a host without a GPU) would fail there in the middle of the first iteration; this
check finds those ops in the config and refuses the run before anything is built,
naming the ops and the set-up switch that builds them.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

__all__ = ['MMCV_CUDA_OPS', 'cuda_ops_in_config', 'mmcv_cuda_ops_message', 'mmcv_compiled_cuda',
           'check_mmcv_cuda_ops']

#: config ``type`` names that run compiled mmcv ops (mmcv.ops), which need CUDA kernels
#: for CUDA tensors
MMCV_CUDA_OPS = frozenset({
    'nms', 'soft_nms', 'RoIAlign', 'RoIPool', 'RoIAlignRotated', 'DeformConv2d', 'DCN',
    'ModulatedDeformConv2d', 'DCNv2', 'ModulatedDeformConv2dPack', 'DeformConv2dPack',
    'CARAFE', 'CARAFEPack', 'MaskedConv2d', 'PSAMask', 'CrissCrossAttention',
    'SigmoidFocalLoss', 'SoftmaxFocalLoss', 'MultiScaleDeformableAttention',
})


def cuda_ops_in_config(node: Any, path: str = '') -> Iterator[tuple[str, str]]:
    """``(op type, dotted path)`` for every mmcv-op ``type`` under ``node``."""
    if isinstance(node, dict) or hasattr(node, 'items'):
        kind = node.get('type')
        if isinstance(kind, str) and kind in MMCV_CUDA_OPS:
            yield kind, path or '<top level>'
        for key, value in node.items():
            yield from cuda_ops_in_config(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from cuda_ops_in_config(value, f'{path}.{i}')


def mmcv_compiled_cuda() -> str:
    """``mmcv.ops.get_compiling_cuda_version()`` ('not available' for CPU ops; '' no ops)."""
    try:
        from mmcv.ops import get_compiling_cuda_version
    except ImportError:
        return ''
    return str(get_compiling_cuda_version())


def mmcv_cuda_ops_message(ops: list[tuple[str, str]], compiled: str) -> str:
    names = sorted({op for op, _ in ops})
    where = ', '.join(p for _, p in ops[:3]) + (' ...' if len(ops) > 3 else '')
    built = (f"mmcv.ops.get_compiling_cuda_version() = '{compiled}'" if compiled
             else 'mmcv has no compiled ops (mmcv-lite)')
    return (f"this config runs mmcv's {', '.join(names)} on the GPU ({where}), but the "
            f'installed mmcv was built without CUDA ops ({built}); rebuild it with '
            '`MMMIXMAE_MMCV_OPS=cuda bash tools/install/setup_env.sh` (see README, '
            '"mmcv and GPUs")')


def check_mmcv_cuda_ops(model_cfg: Any, cuda_available: Optional[bool] = None,
                        compiled: Optional[str] = None) -> None:
    """Raise ``RuntimeError`` when CUDA is used, the config needs mmcv ops, and mmcv's
    ops are CPU-only. ``cuda_available``/``compiled`` default to the real host."""
    if cuda_available is None:
        import torch
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        return
    ops = list(cuda_ops_in_config(model_cfg, 'model'))
    if not ops:
        return
    compiled = mmcv_compiled_cuda() if compiled is None else compiled
    if compiled and compiled != 'not available':
        return
    raise RuntimeError(mmcv_cuda_ops_message(ops, compiled))

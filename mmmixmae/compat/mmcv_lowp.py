"""float32 islands for mmcv CPU ops that have no bfloat16 / float16 kernels.

On a CPU host, :mod:`mmmixmae.compat` turns a config's ``AmpOptimWrapper`` into bfloat16
autocast.  Inside that autocast region mmdet's detectors feed bfloat16 tensors to mmcv's
compiled ops, and mmcv 2.1's CPU kernels for two of them dispatch on float32/float64 only:

* ``NMSop`` (``nms`` / ``batched_nms``: RPN proposals, per-class NMS of the RoI head)
  fails with ``RuntimeError: expected scalar type Float but found BFloat16``;
* ``RoIAlign`` (the bbox and mask RoI extractors) fails with
  ``"ROIAlign_forward" not implemented for 'BFloat16'``.

A third failure is silent: ``batched_nms`` keeps classes apart by adding ``class id x (largest
coordinate + 1)`` to every box before one NMS call, and it does that arithmetic in the boxes'
dtype.  bfloat16 has 8 significant bits: for class 79 of a 1333-px COCO image the offset is
about 105,000, where bfloat16 values are 512 apart, so every box of that class is rounded to
a point (zero area, never suppressed) and boxes of neighbouring classes can be rounded onto
each other (suppressed across classes).  float32 keeps such coordinates exact to 1/128 px.

:func:`apply` wraps the three so that, only for CPU tensors in bfloat16 or float16, the work
runs on a float32 copy of the inputs:

* NMS returns indices, so nothing is cast back; the boxes are compared in float32 (the
  bfloat16 values are exactly representable, so the kept set is the one float32 NMS would
  keep on those values).
* RoIAlign's output is cast back to the input dtype (mmdet writes it into a tensor of the
  feature dtype).  The casts sit outside mmcv's autograd function, so torch's autograd
  carries the gradient through them.
* ``batched_nms`` computes the offsets and runs NMS on float32 boxes; the kept ``[K, 5]``
  detections are returned in the dtype mmcv would have returned (boxes and scores
  promoted), holding the input boxes exactly.  mmdet binds ``batched_nms`` by name in many
  modules at import time, so the function object itself is changed: its code becomes a
  trampoline to the float32 wrapper, and the unchanged original is kept as a copy.

Float32/float64 inputs and every CUDA tensor take mmcv's own path unchanged.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import types
from typing import Callable, Optional, Tuple

import torch

from ._guard import CompatVersionError, check_versions

__all__ = ['SUPPORTED', 'apply', 'LOW_PRECISION', 'SUPPORTED_MMCV']

#: the versions this patch was written and tested for (mmcv is checked in apply)
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))

#: dtypes that mmcv 2.1's CPU NMS / RoIAlign kernels refuse
LOW_PRECISION = (torch.bfloat16, torch.float16)
#: mmcv versions (major, minor) whose ``NMSop.forward`` / ``RoIAlign.forward`` this was
#: written against
SUPPORTED_MMCV = ((2, 0), (2, 1), (2, 2))
_MARK = '_mmmixmae_lowp_patched'


def _needs_float32(t: torch.Tensor) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == 'cpu' and t.dtype in LOW_PRECISION


def _check_signature(fn: Callable, expected: tuple, where: str) -> None:
    names = tuple(inspect.signature(fn).parameters)
    if names[:len(expected)] != expected:
        raise CompatVersionError(f'mmmixmae.compat.mmcv_lowp: {where} has parameters {names}, '
                           f'expected {expected}; this mmcv is not the one the patch was '
                           'written for')


def _wrap_nms_forward(forward: Callable) -> Callable:
    """``NMSop.forward(ctx, bboxes, scores, ...)`` on float32 copies of low-precision CPU
    boxes ``[N, 4]`` and scores ``[N]``; returns the kept indices ``[K]``."""

    @functools.wraps(forward)
    def patched(ctx, bboxes, scores, *args, **kwargs):
        if _needs_float32(bboxes) or _needs_float32(scores):
            bboxes, scores = bboxes.float(), scores.float()
        return forward(ctx, bboxes, scores, *args, **kwargs)

    setattr(patched, _MARK, True)
    return patched


#: the name under which :func:`_batched_nms_trampoline` finds the float32 wrapper in
#: ``mmcv.ops.nms``'s globals (the trampoline's code runs with that module's globals)
_IMPL_NAME = '_mmmixmae_batched_nms_float32'
_BATCHED_NMS_PARAMS = ('boxes', 'scores', 'idxs', 'nms_cfg', 'class_agnostic')


def _batched_nms_trampoline(boxes, scores, idxs, nms_cfg, class_agnostic=False):
    """Code that replaces ``mmcv.ops.nms.batched_nms.__code__``: calls the float32 wrapper
    installed in that module's globals under :data:`_IMPL_NAME`."""
    return _mmmixmae_batched_nms_float32(  # noqa: F821 (a global of mmcv.ops.nms)
        boxes, scores, idxs, nms_cfg, class_agnostic)


def _batched_nms_float32(original: Callable, boxes: torch.Tensor, scores: torch.Tensor,
                         idxs: torch.Tensor, nms_cfg: Optional[dict],
                         class_agnostic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """mmcv's ``batched_nms`` (boxes ``[N, 4]`` or ``[N, 5]``, scores ``[N]``, class ids
    ``[N]``) -> (dets ``[K, 5 or 6]``, kept indices ``[K]``), with the per-class offsets added
    in float32 when the boxes are low-precision CPU tensors."""
    if not _needs_float32(boxes):
        return original(boxes, scores, idxs, nms_cfg, class_agnostic)
    dets, keep = original(boxes.float(), scores, idxs, nms_cfg, class_agnostic)
    return dets.to(torch.promote_types(boxes.dtype, scores.dtype)), keep


def _patch_batched_nms(nms_module: types.ModuleType) -> None:
    """Turn ``nms_module.batched_nms`` in place into the float32 wrapper (idempotent)."""
    fn = nms_module.batched_nms
    if getattr(fn, _MARK, False):
        return
    _check_signature(fn, _BATCHED_NMS_PARAMS, 'mmcv.ops.nms.batched_nms')
    if fn.__closure__ is not None or fn.__globals__ is not vars(nms_module):
        raise CompatVersionError('mmmixmae.compat.mmcv_lowp: mmcv.ops.nms.batched_nms is not '
                                 'the plain module-level function the patch was written for')
    original = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__)
    original.__kwdefaults__ = fn.__kwdefaults__
    setattr(nms_module, _IMPL_NAME, functools.partial(_batched_nms_float32, original))
    fn.__code__ = _batched_nms_trampoline.__code__
    setattr(fn, _MARK, True)


def _wrap_roi_align_forward(forward: Callable) -> Callable:
    """``RoIAlign.forward(self, input [N, C, H, W], rois [K, 5])`` -> ``[K, C, h, w]`` in the
    input's dtype, computed in float32 for low-precision CPU input."""

    @functools.wraps(forward)
    def patched(self, input, rois):
        if _needs_float32(input) or _needs_float32(rois):
            return forward(self, input.float(), rois.float()).to(input.dtype)
        return forward(self, input, rois)

    setattr(patched, _MARK, True)
    return patched


def apply() -> None:
    """Install the three wrappers (idempotent).  Raises ``CompatVersionError`` on an mmcv whose version
    or op signatures differ from the ones the wrappers were written for."""
    check_versions(__name__, SUPPORTED)
    try:
        import mmcv
        from mmcv.ops.nms import NMSop
        from mmcv.ops.roi_align import RoIAlign
    except ImportError:
        return  # no mmcv ops in this environment: nothing to patch
    major_minor = tuple(int(p) for p in mmcv.__version__.split('.')[:2])
    if major_minor not in SUPPORTED_MMCV:
        raise CompatVersionError(f'mmmixmae.compat.mmcv_lowp was written for mmcv '
                           f'{", ".join(f"{a}.{b}" for a, b in SUPPORTED_MMCV)}.x, found '
                           f'{mmcv.__version__}')
    if not getattr(NMSop.forward, _MARK, False):
        _check_signature(NMSop.forward, ('ctx', 'bboxes', 'scores'), 'mmcv.ops.nms.NMSop.forward')
        NMSop.forward = staticmethod(_wrap_nms_forward(NMSop.forward))
    if not getattr(RoIAlign.forward, _MARK, False):
        _check_signature(RoIAlign.forward, ('self', 'input', 'rois'),
                         'mmcv.ops.roi_align.RoIAlign.forward')
        RoIAlign.forward = _wrap_roi_align_forward(RoIAlign.forward)
    # the module, not ``mmcv.ops.nms`` the function that ``import mmcv.ops.nms as`` would give
    _patch_batched_nms(importlib.import_module('mmcv.ops.nms'))

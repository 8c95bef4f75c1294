"""Run-time patches of mmengine 0.10.7 (torch 2.14, CPU hosts): one module per patch.

Design
------
* **One patch, one module.**  Each module here fixes one place where mmengine fails on
  this stack, says in its docstring what fails and why the fix is safe, and exposes
  ``SUPPORTED`` (package -> known versions) and ``apply()``.
* **Version-guarded.**  ``apply()`` first calls :func:`._guard.check_versions`: on an
  mmengine or torch version the patch was not written for it raises
  :class:`CompatVersionError` naming the patch and both versions, instead of patching code
  it has never seen.  Extending ``SUPPORTED`` is a deliberate act after reading that
  version's source.
* **Idempotent.**  Every installed function carries the ``_guard.MARK`` attribute; a
  second ``apply()`` changes nothing.
* **Applied in one place.**  :func:`apply_compat` (below) applies all patches in a fixed
  order; ``import mmmixmae`` calls it, so every entry point (tools, tests, ``mim``) gets
  the same state.  Nothing else patches mmengine.
* **Narrow.**  Each patch changes behaviour only where mmengine would otherwise fail; on a
  CUDA machine the distributed and AMP code paths are left exactly as mmengine wrote them.
* **Permanent features are not patches.**  Weights-only loading with its allowlist and
  errors is part of :mod:`mmmixmae.checkpoint.io`; :mod:`.checkpoint_loader` only routes
  mmengine's loader through it.  The CPU AMP dtype rule is
  :func:`mmmixmae.utils.amp.cpu_amp_dtype`.

Patches (in the order applied)
------------------------------
=========================  =================================================================
``checkpoint_loader``      mmengine's local-file loader reads ``weights_only=True`` with the
                           allowlist and clear errors (resume, ``load_from``)
``init_dist``              ``--launcher pytorch|slurm|mpi`` on a host without CUDA (no
                           ``set_device``; ``nccl`` becomes ``gloo`` with a warning)
``wrap_model``             DDP of a CPU module gets ``device_ids=None``
``amp_optim_wrapper``      ``AmpOptimWrapper`` on CPU: bfloat16 autocast, disabled scaler
``mmcv_lowp``              mmcv's CPU ``NMSop`` / ``RoIAlign`` run on float32 copies of
                           bfloat16/float16 inputs (they have no low-precision CPU kernels)
``fsdp``                   mmengine's ``FSDPStrategy`` / ``DDPStrategy`` (FlexibleRunner) on
                           CPU, a launcher check, and strict, weights-only sharded checkpoints
``deepspeed_strategy``     mmengine's ``DeepSpeedStrategy`` with deepspeed 0.19 (only when
                           deepspeed is installed): no silent C++ build inside
                           ``init_distributed``, no import of the removed one-bit
                           optimizers, checkpoint hooks called on save and load
=========================  =================================================================
"""
from __future__ import annotations

from . import (amp_optim_wrapper, checkpoint_loader, deepspeed_strategy, fsdp, init_dist,
               mmcv_lowp, wrap_model)
from ._guard import CompatVersionError, check_versions

__all__ = ['apply_compat', 'PATCHES', 'CompatVersionError', 'check_versions']

#: every patch module, in the order :func:`apply_compat` applies them
PATCHES = (checkpoint_loader, init_dist, wrap_model, amp_optim_wrapper, mmcv_lowp, fsdp,
           deepspeed_strategy)

_applied = False


def apply_compat() -> None:
    """Apply every patch of :data:`PATCHES` (idempotent; version-guarded)."""
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch.apply()
    _applied = True

"""Reliability hooks (registered in mmengine's root ``HOOKS``, visible from every scope).

* :class:`ExactResumeHook` -- per-rank RNG state in checkpoints, strict weight checks.
* :class:`AtomicCheckpointHook` -- crash-safe ``CheckpointHook``.
* :class:`RankMeanLogVarsHook` -- log the mean loss over ranks.
* :class:`NonFiniteLossHook` -- stop on NaN/Inf loss or a collapsed fp16 loss scale;
  bf16 -> fp16 fallback.
"""
from .atomic_checkpoint import AtomicCheckpointHook, atomic_write_bytes
from .exact_resume import (ExactResumeHook, capture_rng_state, check_state_dict_fits,
                           restore_rng_state)
from .numerics import NonFiniteLossError, NonFiniteLossHook, bf16_supported
from .rank_mean import RankMeanLogVarsHook

__all__ = [
    'AtomicCheckpointHook', 'atomic_write_bytes', 'ExactResumeHook',
    'capture_rng_state', 'check_state_dict_fits', 'restore_rng_state', 'NonFiniteLossError',
    'NonFiniteLossHook', 'bf16_supported', 'RankMeanLogVarsHook'
]

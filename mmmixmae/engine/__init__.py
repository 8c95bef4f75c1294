"""Training-engine pieces (optimizer constructors, reliability hooks, resumable loops).

Import-light on purpose: only mmengine is needed, never mmdet or mmseg, so that
``import mmmixmae.engine`` works in a pretraining-only (mmcv-lite) environment.
"""
from .optimizers import MixMAELayerDecayOptimWrapperConstructor
from .hooks import (AtomicCheckpointHook, ExactResumeHook, NonFiniteLossHook,  # noqa: E402
                    RankMeanLogVarsHook)
from .runner import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop  # noqa: E402
from .sharding import (mixmae_block_checkpoint_fn, mixmae_block_wrap_policy,  # noqa: E402
                       sharding_unit_types)

__all__ = [
    'MixMAELayerDecayOptimWrapperConstructor', 'AtomicCheckpointHook', 'ExactResumeHook',
    'NonFiniteLossHook', 'RankMeanLogVarsHook', 'ResumableEpochBasedTrainLoop',
    'ResumableIterBasedTrainLoop', 'mixmae_block_wrap_policy', 'mixmae_block_checkpoint_fn',
    'sharding_unit_types'
]

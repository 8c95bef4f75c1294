"""Optimizer-wrapper constructors (registered in mmengine's root registry)."""
from .layer_decay import DEFAULT_NO_DECAY_KEYS, MixMAELayerDecayOptimWrapperConstructor

__all__ = ['DEFAULT_NO_DECAY_KEYS', 'MixMAELayerDecayOptimWrapperConstructor']

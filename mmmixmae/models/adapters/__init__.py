"""MixMAE beyond MixMAESwin: an adapter for hierarchical backbones from the registry."""
from .adapter import MixMAEAdapter
from .context import MixingContext

__all__ = ['MixMAEAdapter', 'MixingContext']

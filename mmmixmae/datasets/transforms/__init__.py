"""Data transforms (registered in mmengine's root ``TRANSFORMS``, visible from every scope)."""
from .loading import LoadImageRobust, UndecodableImageError, decode_image_strict

__all__ = ['LoadImageRobust', 'UndecodableImageError', 'decode_image_strict']

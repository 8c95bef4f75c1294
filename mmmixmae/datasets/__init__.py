"""Datasets of mmmixmae (registered in mmpretrain's ``DATASETS``)."""
from .packaged_photos import (ALL_PHOTOS, COLOR_PHOTOS, GRAY_PHOTOS, PackagedPhotos,
                              packaged_photo_path, packaged_photo_paths, read_photo)

__all__ = [
    'ALL_PHOTOS', 'COLOR_PHOTOS', 'GRAY_PHOTOS', 'PackagedPhotos', 'packaged_photo_path',
    'packaged_photo_paths', 'read_photo'
]
from .transforms import LoadImageRobust, UndecodableImageError  # noqa: E402,F401  (reliability)

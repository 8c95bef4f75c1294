"""``LoadImageRobust``: image loading with a stated policy for bad files.

mmcv's ``LoadImageFromFile`` (what mmpretrain configs use) decodes with OpenCV in
``'color'`` mode.  On bad files it stops with an ``AssertionError: failed to load image``
(truncated files, which OpenCV 5 refuses to decode), an OpenCV assertion that does not
name the file (a zero-byte file), or -- with ``ignore_empty=True`` -- silently drops the
sample, with no trace in the log of how many were lost.

``LoadImageRobust`` decodes exactly like ``LoadImageFromFile`` for every readable image (same
OpenCV call, so pixel values are identical) and:

* converts what OpenCV can decode to 3-channel 8-bit: grayscale is replicated to three
  channels, an alpha channel is dropped (colour values kept as stored), 16-bit images are
  scaled to 8 bits (OpenCV's ``IMREAD_COLOR`` conversion);
* raises :class:`UndecodableImageError` naming the file and the reason for an empty,
  truncated or non-image file (``on_error='raise'``, the default), or, with
  ``on_error='skip'``, logs a warning with the file, the reason and the running number of
  skipped files (shared by all dataloader workers) and returns ``None``, on which
  mmengine's ``BaseDataset`` draws another sample (up to ``max_refetch`` times);
* raises ``FileNotFoundError`` naming the file when it does not exist, under both
  policies: an annotation that points at a missing file is a broken dataset, not a bad
  image.
"""
from __future__ import annotations

import multiprocessing
import os.path as osp
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS

__all__ = ['LoadImageRobust', 'UndecodableImageError', 'decode_image_strict']

ON_ERROR = ('raise', 'skip')


class UndecodableImageError(ValueError):
    """An image file exists but cannot be decoded (names the file)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f'cannot decode image {path}: {reason}')
        self.path = path
        self.reason = reason


def decode_image_strict(data: bytes, path: str, channel_order: str = 'bgr') -> np.ndarray:
    """Decode ``data`` to ``H x W x 3`` uint8 or raise :class:`UndecodableImageError`."""
    if not data:
        raise UndecodableImageError(path, 'the file is empty (0 bytes)')
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise UndecodableImageError(path, f'OpenCV failed: {str(err).strip()}') from None
    if img is None:
        raise UndecodableImageError(
            path, f'not a readable image ({len(data)} bytes; truncated, corrupt or of an '
            'unsupported format)')
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:  # pragma: no cover
        raise UndecodableImageError(path, f'decoded to {img.dtype} {img.shape}, expected '
                                    'uint8 H x W x 3')
    if channel_order == 'rgb':
        img = np.ascontiguousarray(img[..., ::-1])
    return img


class _SharedCounter:
    """A counter shared with forked/spawned dataloader workers."""

    def __init__(self):
        self._value = multiprocessing.Value('q', 0)

    def increment(self) -> int:
        with self._value.get_lock():
            self._value.value += 1
            return self._value.value

    @property
    def value(self) -> int:
        return self._value.value

    def __deepcopy__(self, memo):  # copies of the transform keep counting together
        return self


@TRANSFORMS.register_module()
class LoadImageRobust(BaseTransform):
    """Load an image (``results['img_path']``) with an explicit bad-file policy.

    Required keys: ``img_path``.  Added keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        on_error: ``'raise'`` (default) stops with the file's path; ``'skip'`` logs a
            warning with the path and the running count and returns ``None`` (the dataset
            then draws another sample).  Missing files always raise.
        channel_order: ``'bgr'`` (default, like ``LoadImageFromFile``; the data
            preprocessor's ``to_rgb=True`` then gives RGB) or ``'rgb'``.
        to_float32: return float32 instead of uint8.
        backend_args: mmengine file backend arguments (local disk by default).
    """

    def __init__(self, on_error: str = 'raise', channel_order: str = 'bgr',
                 to_float32: bool = False, backend_args: Optional[dict] = None):
        if on_error not in ON_ERROR:
            raise ValueError(f'on_error must be one of {ON_ERROR}, got {on_error!r}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.on_error = on_error
        self.channel_order = channel_order
        self.to_float32 = to_float32
        self.backend_args = None if backend_args is None else dict(backend_args)
        self._skipped = _SharedCounter()

    @property
    def num_skipped(self) -> int:
        """Files skipped so far by this transform in all processes."""
        return self._skipped.value

    def _read(self, path: str) -> bytes:
        is_local = '://' not in str(path)
        if is_local and not osp.isfile(path):
            what = 'is a directory' if osp.isdir(path) else 'does not exist'
            raise FileNotFoundError(f'image file {what}: {path} (check the dataset '
                                    'annotation / data_root that refers to it)')
        try:
            return fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(f'image file does not exist: {path}') from None

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        data = self._read(path)
        try:
            img = decode_image_strict(data, path, self.channel_order)
        except UndecodableImageError as err:
            if self.on_error == 'raise':
                raise
            count = self._skipped.increment()
            print_log(f'LoadImageRobust: skipping {err.path}: {err.reason} ({count} '
                      'undecodable image(s) skipped so far)', logger='current',
                      level=30)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(on_error={self.on_error!r}, '
                f'channel_order={self.channel_order!r}, to_float32={self.to_float32})')

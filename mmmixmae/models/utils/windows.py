"""Window partitioning for ``[B, H, W, C]`` token grids."""
from typing import Tuple

import torch
import torch.nn.functional as F


def window_partition(x: torch.Tensor, window_size: Tuple[int, int]) -> torch.Tensor:
    """``x: [B, H, W, C]`` -> ``[B * nW, Wh * Ww, C]`` (windows in raster order per image)."""
    b, h, w, c = x.shape
    wh, ww = window_size
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, window_size: Tuple[int, int], h: int,
                   w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, Wh * Ww, C]`` -> ``[B, H, W, C]``."""
    wh, ww = window_size
    c = windows.shape[-1]
    x = windows.view(-1, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def pad_to_multiple(x: torch.Tensor, multiple: Tuple[int, int]) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad ``x: [B, H, W, C]`` at the bottom/right; returns the padded tensor and pads."""
    _, h, w, _ = x.shape
    pad_h = (-h) % multiple[0]
    pad_w = (-w) % multiple[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, pad_h, pad_w

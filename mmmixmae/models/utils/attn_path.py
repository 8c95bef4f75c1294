"""Choosing and preparing the pretraining attention path of one stage.

``attn_path`` names how the two mixed images are kept apart inside every window:

* ``'dense'``: full ``N x N`` window attention plus an additive ``0 / -inf`` isolation
  pattern (``attention.isolation_pattern``);
* ``'grouped'``: attention only within each image's group (``grouped_attention.py``);
* ``'auto'``: ``'grouped'`` in fp32, ``'dense'`` under autocast (on the CPU the grouped
  path's many small bf16 products made the step about 2x slower, see docs/en/benchmarks.md;
  not yet measured on a GPU), each pick logged once per process.

The structure (pattern or plan) is built once per stage and step by :func:`build_stage_plan`
and shared by all blocks of the stage; blocks of another window size (global attention)
get their own, built on first use and cached for the rest of the step.
"""
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .attention import isolation_pattern
from .grouped_attention import GroupPlan, build_group_plan
from .windows import pad_to_multiple

ATTN_PATHS = ('dense', 'grouped', 'auto')
_AUTO_LOGGED = []


def check_attn_path(path: str) -> None:
    if path not in ATTN_PATHS:
        raise ValueError(f'attn_path must be one of {ATTN_PATHS}, got {path!r}')


def resolve_attn_path(path: str, device_type: str = 'cpu') -> str:
    """``'auto'`` -> the path it stands for on ``device_type`` now (logged once per pick)."""
    check_attn_path(path)
    if path != 'auto':
        return path
    autocast = torch.is_autocast_enabled(device_type)
    pick = 'dense' if autocast else 'grouped'
    if pick not in _AUTO_LOGGED:
        why = ('autocast is on: the grouped path was slower under bf16 on the CPU' if autocast
               else "fp32: attention only within each image's group, exact, fewer multiply-adds")
        print_log(f"attn_path='auto' picked {pick!r} ({why})", logger='current')
        _AUTO_LOGGED.append(pick)
    return pick


class StageAttnPlan:
    """The isolation structure of one stage for one step.

    Args:
        path: ``'dense'`` or ``'grouped'``.
        mask: ``[1, H*W, 1]`` mixing mask at the stage resolution.
        hw: ``(H, W)``.
    """

    def __init__(self, path: str, mask: torch.Tensor, hw: Tuple[int, int]):
        if path not in ('dense', 'grouped'):
            raise ValueError(f"StageAttnPlan needs a resolved path ('dense' or 'grouped'), "
                             f'got {path!r}')
        self.path = path
        self.mask = mask
        self.hw = tuple(hw)
        self._cache: Dict[Tuple[int, int], Union[torch.Tensor, GroupPlan]] = {}

    def get(self, window: Tuple[int, int], attn: nn.Module) -> Union[torch.Tensor, GroupPlan]:
        """The dense ``[nW, 1, N, N]`` pattern or the :class:`GroupPlan` for ``window``."""
        window = tuple(window)
        if window not in self._cache:
            self._cache[window] = self._build(window, attn)
        return self._cache[window]

    def _build(self, window: Tuple[int, int], attn: nn.Module):
        h, w = self.hw
        if self.path == 'dense':
            m, _, _ = pad_to_multiple(self.mask.reshape(1, h, w, 1), window)
            return isolation_pattern(m.reshape(1, -1, 1), (m.shape[1], m.shape[2]), window)
        if window != tuple(attn.window_size):
            raise ValueError(f"attn_path='grouped' supports only the block's own window "
                             f'{tuple(attn.window_size)}, got {window} (global attention '
                             "blocks in pretraining): use attn_path='dense'")
        return build_group_plan(self.mask, self.hw, window, attn.relative_position_index)


def build_stage_plan(path: str, mask: torch.Tensor, hw: Tuple[int, int]) -> StageAttnPlan:
    """Resolve ``path`` and wrap the stage's ``[1, H*W, 1]`` mask for its blocks."""
    return StageAttnPlan(resolve_attn_path(path, mask.device.type), mask, hw)

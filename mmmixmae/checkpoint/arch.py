"""The model a converted state dict describes, read from its tensor shapes.

The converters check their output against the model it names: they infer the
``MixMAESwin`` / ``MixMAEDecoder`` keyword arguments here, build those models and compare
every key and shape.
"""
from __future__ import annotations

import math
import re
from typing import Dict

import torch

from ..models.utils.rel_pos import window_from_table_length
from .errors import CheckpointConversionError
from .report import fmt_shape
from .state_dict import DENSE_NORM, StateDict

__all__ = ['infer_backbone_config', 'infer_decoder_config']

_BLOCK_KEY = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.')
_DEC_BLOCK_KEY = re.compile(r'decoder_blocks\.(\d+)\.')


def _need(sd: StateDict, key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointConversionError(f'cannot infer the {what}: key {key!r} is missing')
    return sd[key]


def infer_backbone_config(sd: StateDict) -> dict:
    """``MixMAESwin`` keyword arguments that reproduce the shapes of ``sd``.

    ``sd`` holds backbone keys without prefix (official names).  The image size
    comes from ``absolute_pos_embed`` (square grids), the windows from the
    relative-position tables, the heads from their columns.
    """
    proj = _need(sd, 'patch_embed.proj.weight', 'patch embedding')
    embed_dims, in_channels, patch_size = proj.shape[0], proj.shape[1], proj.shape[2]
    depth_of: Dict[int, int] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            depth_of[stage] = max(depth_of.get(stage, 0), block + 1)
    if not depth_of or sorted(depth_of) != list(range(len(depth_of))):
        raise CheckpointConversionError(
            f'cannot infer the stages: found blocks in stages {sorted(depth_of)}')
    stages = len(depth_of)
    depths = [depth_of[i] for i in range(stages)]
    num_heads, windows = [], []
    for i in range(stages):
        table = _need(sd, f'layers.{i}.blocks.0.attn.relative_position_bias_table',
                      f'heads and window of stage {i}')
        num_heads.append(int(table.shape[1]))
        try:
            windows.append(window_from_table_length(int(table.shape[0])))
        except ValueError as err:
            raise CheckpointConversionError(
                f'layers.{i}.blocks.0.attn.relative_position_bias_table: {err}') from None
    pos = _need(sd, 'absolute_pos_embed', 'image size')
    side = math.isqrt(int(pos.shape[1]))
    if pos.dim() != 3 or side * side != pos.shape[1]:
        raise CheckpointConversionError(
            f'absolute_pos_embed of shape {fmt_shape(pos.shape)} is not a square token grid')
    fc1 = _need(sd, 'layers.0.blocks.0.mlp.fc1.weight', 'MLP ratio')
    out_indices = sorted({stages - 1} | {int(m.group(1)) for m in map(DENSE_NORM.match, sd)
                                         if m})
    return dict(
        arch=dict(embed_dims=int(embed_dims), depths=depths, num_heads=num_heads),
        img_size=int(side * patch_size), patch_size=int(patch_size),
        in_channels=int(in_channels), window_size=windows,
        mlp_ratio=float(fc1.shape[0]) / float(embed_dims), out_indices=out_indices)


def infer_decoder_config(sd: StateDict) -> dict:
    """``MixMAEDecoder`` keyword arguments for decoder keys without prefix.

    The number of heads does not show in any shape; it is reported as the
    official default (16) when it divides the width, and does not affect the
    key/shape check.
    """
    embed = _need(sd, 'decoder_embed.weight', 'decoder width')
    embed_dims, in_channels = int(embed.shape[0]), int(embed.shape[1])
    depth = 1 + max((int(m.group(1)) for m in map(_DEC_BLOCK_KEY.match, sd) if m), default=-1)
    pos = _need(sd, 'decoder_pos_embed', 'decoder grid')
    side = math.isqrt(int(pos.shape[1]))
    if side * side != pos.shape[1]:
        raise CheckpointConversionError(
            f'decoder_pos_embed of shape {fmt_shape(pos.shape)} is not a square token grid')
    pred = _need(sd, 'decoder_pred.weight', 'reconstruction size')
    stride = math.isqrt(int(pred.shape[0]) // 3)
    mlp_ratio = 4.
    if depth > 0:
        mlp_ratio = float(_need(sd, 'decoder_blocks.0.mlp.fc1.weight', 'decoder MLP ratio')
                          .shape[0]) / embed_dims
    return dict(in_channels=in_channels, embed_dims=embed_dims, depth=depth,
                num_heads=16 if embed_dims % 16 == 0 else 1, mlp_ratio=mlp_ratio,
                img_size=side * stride, encoder_stride=stride)

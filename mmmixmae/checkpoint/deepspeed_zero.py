"""DeepSpeed ZeRO-2/3 checkpoint folders -> one full float32 state dict, offline.

A checkpoint of ``DeepSpeedStrategy`` (mmengine's FlexibleRunner) is a folder ``iter_N.pth/``
that deepspeed's ``engine.save_checkpoint`` fills (deepspeed 0.19, data parallelism only, so
``mp_rank_00`` everywhere):

* model states: ZeRO-2 ``mp_rank_00_model_states.pt`` (one file), ZeRO-3
  ``zero_pp_rank_{r}_mp_rank_00_model_states.pt`` (one per rank).  Each holds ``module`` (the
  module's state dict in the training dtype; under ZeRO-3 the parameters are empty
  placeholders), ``param_shapes`` (one ``{name: shape}`` per optimizer parameter group, in
  the order of the flat groups), ``frozen_param_shapes`` / ``frozen_param_fragments``
  (``requires_grad=False`` parameters: whole under ZeRO-2, each rank's flat slice under
  ZeRO-3), ``buffer_names``, ``dp_world_size`` and mmengine's ``meta`` / ``message_hub`` /
  ``param_schedulers``.
* optimizer states ``[bf16_]zero_pp_rank_{r}_mp_rank_00_optim_states.pt``, one per rank, whose
  ``optimizer_state_dict`` holds that rank's slice of the float32 master weights: ZeRO-2
  ``single_partition_of_fp32_groups`` (per group, the rank's contiguous part of the group's
  flattened parameters, saved without padding), ZeRO-3 ``fp32_flat_groups`` (per sub-group,
  the rank's ``ceil(numel / W)`` elements of every parameter in turn, the last rank's
  zero-padded).

:func:`consolidate_deepspeed` puts these together and returns every trainable parameter from
the float32 master copy (never from the bfloat16 module copy), frozen parameters and buffers
upcast to float32 if they were saved in a lower precision (a bfloat16 run used them rounded),
in the module's key order: the state dict a one-process run of the same model saves, which
fine-tuning (``init_cfg=Pretrained``), mmdet and mmseg read.  Every file is read with
``torch.load(weights_only=True)`` (:func:`mmmixmae.checkpoint.io.load_checkpoint_safely`),
with the four deepspeed / mmengine classes these files hold added to the allowlist for the
read (:func:`deepspeed_safe_globals`); deepspeed's own ``zero_to_fp32.py`` unpickles them with
``weights_only=False``.  A missing or extra rank file, files of different runs or a layout
that does not add up stop it with :class:`InvalidCheckpointError` naming the file.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

import torch

from .errors import InvalidCheckpointError
from .io import load_checkpoint_safely

__all__ = ['deepspeed_safe_globals', 'read_deepspeed_file', 'find_deepspeed_files',
           'consolidate_deepspeed', 'holds_deepspeed_files']

_MODEL_RE = re.compile(r'^(?:zero_pp_rank_(\d+)_)?mp_rank_00_model_states\.pt$')
_OPTIM_RE = re.compile(r'^(?:bf16_|fp16_)?zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt$')


def deepspeed_safe_globals() -> list:
    """The classes a deepspeed 0.19 ZeRO checkpoint of mmengine's DeepSpeedStrategy pickles
    besides tensors and builtins: mmengine's ``ConfigDict`` (the deepspeed config, built from
    the mmengine config), deepspeed's ``ZeroStageEnum``, ``LossScaler`` (plain attributes) and
    ``fragment_address`` (a dataclass of two ints)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    from mmengine.config.config import ConfigDict
    return [ConfigDict, ZeroStageEnum, LossScaler, fragment_address]


def read_deepspeed_file(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """One file of a deepspeed checkpoint folder, weights-only with :func:`deepspeed_safe_globals`
    (also deepspeed's own resume reader, :mod:`mmmixmae.compat.deepspeed_strategy`)."""
    with torch.serialization.safe_globals(deepspeed_safe_globals()):
        data = load_checkpoint_safely(path, map_location)
    if not isinstance(data, dict):
        raise InvalidCheckpointError(f'{path}: not a deepspeed checkpoint file (a '
                                     f'{type(data).__name__}, not a dict)', path)
    return data


def _rank_files(folder: str, pattern: 're.Pattern[str]') -> Dict[int, str]:
    found: Dict[int, str] = {}
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if match:
            rank = int(match.group(1) or 0)
            if rank in found:
                raise InvalidCheckpointError(
                    f'deepspeed checkpoint {folder}: two files for rank {rank}: '
                    f'{osp.basename(found[rank])} and {name}', folder)
            found[rank] = osp.join(folder, name)
    return found


def holds_deepspeed_files(folder: str) -> bool:
    """Whether the folder ``folder`` holds deepspeed model-state files (names only)."""
    return any(_MODEL_RE.match(name) for name in os.listdir(folder))


def _check_ranks(folder: str, files: Dict[int, str], world_size: int, what: str) -> List[str]:
    missing = [r for r in range(world_size) if r not in files]
    extra = sorted(r for r in files if r >= world_size)
    if missing or extra:
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder} was written by {world_size} ranks (dp_world_size) '
            f'but its {what} files are for ranks {sorted(files)}'
            + (f': rank(s) {missing} missing' if missing else '')
            + (f': rank(s) {extra} extra' if extra else ''), folder)
    return [files[r] for r in range(world_size)]


def find_deepspeed_files(folder: str) -> Tuple[List[str], List[str], int]:
    """The model-state and optimizer-state files of ``folder`` in rank order.

    Returns:
        ``(model_files, optim_files, world_size)``: one model file for ZeRO-2 (all ranks
        save the same), one per rank for ZeRO-3; one optimizer file per rank.
    """
    if not osp.isdir(folder):
        raise InvalidCheckpointError(
            f'{folder} is not a deepspeed checkpoint folder'
            + (' (a file: a full checkpoint already?)' if osp.isfile(folder) else
               ' (it does not exist)'), folder)
    models, optims = _rank_files(folder, _MODEL_RE), _rank_files(folder, _OPTIM_RE)
    if not models:
        raise InvalidCheckpointError(
            f'{folder} holds no deepspeed *mp_rank_00_model_states.pt file: not a checkpoint '
            'of DeepSpeedStrategy', folder)
    first = read_deepspeed_file(next(iter(models.values())))
    world_size = first.get('dp_world_size')
    if not isinstance(world_size, int) or world_size < 1:
        raise InvalidCheckpointError(f'{next(iter(models.values()))}: no dp_world_size', folder)
    if osp.basename(models.get(0, '')) == 'mp_rank_00_model_states.pt':
        model_files = [models[0]]  # ZeRO-1/2: one file, the same for every rank
    else:
        model_files = _check_ranks(folder, models, world_size, 'model-state')
    return model_files, _check_ranks(folder, optims, world_size, 'optimizer-state'), world_size


def _same_across(files: Sequence[str], datas: Sequence[dict], key: str) -> Any:
    value = datas[0].get(key)
    for path, data in zip(files[1:], datas[1:]):
        if data.get(key) != value:
            raise InvalidCheckpointError(
                f'{path}: {key} differs from {osp.basename(files[0])}: the files are of '
                'different runs', path)
    return value


def _zero_stage(path: str, optim: dict) -> int:
    stage = optim.get('zero_stage')
    if stage is None:
        raise InvalidCheckpointError(f'{path}: optimizer_state_dict has no zero_stage', path)
    return int(stage)


def _merge_stage2(folder: str, shapes: List[Dict[str, torch.Size]],
                  optims: Sequence[dict]) -> Dict[str, torch.Tensor]:
    """ZeRO-1/2: per group, the ranks' contiguous slices end to end, cut in parameter order."""
    groups = [o['single_partition_of_fp32_groups'] for o in optims]
    if any(len(g) != len(shapes) for g in groups):
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder}: {len(shapes)} parameter groups in param_shapes, '
            f'{[len(g) for g in groups]} fp32 partitions per rank', folder)
    params: Dict[str, torch.Tensor] = {}
    for index, group_shapes in enumerate(shapes):
        flat = torch.cat([g[index].reshape(-1) for g in groups])
        offset = 0
        for name, shape in group_shapes.items():
            numel = math.prod(shape)
            params[name] = flat[offset:offset + numel].view(shape).clone()
            offset += numel
        if offset != flat.numel():
            raise InvalidCheckpointError(
                f'deepspeed checkpoint {folder}: parameter group {index} has {flat.numel()} '
                f'float32 elements over all ranks but its parameters {offset}', folder)
    return params


def _merge_stage3(folder: str, shapes: List[Dict[str, torch.Size]],
                  optims: Sequence[dict]) -> Dict[str, torch.Tensor]:
    """ZeRO-3: each parameter is ``ceil(numel / W)`` elements on every rank, in turn."""
    flats = [torch.cat([t.reshape(-1) for t in o['fp32_flat_groups']]) for o in optims]
    world_size = len(flats)
    params: Dict[str, torch.Tensor] = {}
    offset = 0
    for group_shapes in shapes:
        for name, shape in group_shapes.items():
            numel = math.prod(shape)
            part = math.ceil(numel / world_size)
            pieces = [flat[offset:offset + part] for flat in flats]
            if any(p.numel() != part for p in pieces):
                raise InvalidCheckpointError(
                    f'deepspeed checkpoint {folder}: the float32 partitions end inside {name}',
                    folder)
            params[name] = torch.cat(pieces)[:numel].view(shape).clone()
            offset += part
    if any(offset != flat.numel() for flat in flats):
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder}: the parameters take {offset} float32 elements per '
            f'rank but the ranks hold {[f.numel() for f in flats]}', folder)
    return params


def _frozen(folder: str, model_datas: Sequence[dict], stage: int) -> Dict[str, torch.Tensor]:
    shapes = model_datas[0].get('frozen_param_shapes') or {}
    out: Dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        pieces = [(d.get('frozen_param_fragments') or {}).get(name) for d in model_datas]
        if any(p is None for p in pieces):
            raise InvalidCheckpointError(
                f'deepspeed checkpoint {folder}: frozen parameter {name} has no fragment', folder)
        numel = math.prod(shape)
        whole = pieces[0] if stage < 3 else torch.cat([p.reshape(-1) for p in pieces])
        if whole.numel() < numel:
            raise InvalidCheckpointError(
                f'deepspeed checkpoint {folder}: frozen parameter {name} has {whole.numel()} '
                f'elements, its shape {tuple(shape)} needs {numel}', folder)
        out[name] = whole.reshape(-1)[:numel].view(shape).clone()
    return out


def _float32(value: torch.Tensor) -> torch.Tensor:
    return value.float() if value.is_floating_point() else value


def consolidate_deepspeed(folder: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """The full float32 state dict of the deepspeed ZeRO checkpoint ``folder``.

    Returns:
        tuple: the state dict in the module's key order, and the checkpoint's mmengine
        ``meta`` with ``consolidated_from`` (folder, number of ranks, ZeRO stage) added.
    """
    model_files, optim_files, world_size = find_deepspeed_files(folder)
    model_datas = [read_deepspeed_file(p) for p in model_files]
    optim_datas = [read_deepspeed_file(p) for p in optim_files]
    optims = []
    for path, data in zip(optim_files, optim_datas):
        if 'optimizer_state_dict' not in data:
            raise InvalidCheckpointError(f'{path}: no optimizer_state_dict', path)
        optims.append(data['optimizer_state_dict'])
    stages = {_zero_stage(p, o) for p, o in zip(optim_files, optims)}
    if len(stages) != 1:
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder}: the optimizer files mix ZeRO stages {sorted(stages)}',
            folder)
    stage = stages.pop()
    if stage not in (1, 2, 3):
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder}: ZeRO stage {stage}; only stages 1-3 hold float32 '
            'partitions to consolidate', folder)
    shapes = _same_across(model_files, model_datas, 'param_shapes')
    if not isinstance(shapes, list):
        raise InvalidCheckpointError(f'{model_files[0]}: no param_shapes', model_files[0])
    for path, optim in zip(optim_files, optims):
        count = optim.get('partition_count')
        counts = count if isinstance(count, list) else [count]
        if any(c != world_size for c in counts):
            raise InvalidCheckpointError(
                f'{path}: partitioned over {sorted(set(map(str, counts)))} ranks, but the folder '
                f'was written by {world_size} (dp_world_size)', path)
    merge = _merge_stage3 if stage == 3 else _merge_stage2
    params = merge(folder, shapes, optims)
    params.update(_frozen(folder, model_datas, stage))
    module = model_datas[0].get('module')
    if not isinstance(module, dict):
        raise InvalidCheckpointError(f'{model_files[0]}: no module state dict', model_files[0])
    buffers = set(model_datas[0].get('buffer_names') or [])
    full: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in module.items():
        if key in params:
            full[key] = _float32(params.pop(key))
        elif key in buffers:
            full[key] = _float32(value.clone())
        else:
            raise InvalidCheckpointError(
                f'deepspeed checkpoint {folder}: {key} is in the module state dict but neither '
                'a trainable (param_shapes), frozen nor buffer (buffer_names) entry', folder)
    if params:
        raise InvalidCheckpointError(
            f'deepspeed checkpoint {folder}: {sorted(params)[:5]} are in param_shapes but not in '
            'the module state dict', folder)
    meta = dict(model_datas[0].get('meta') or {})
    meta['consolidated_from'] = dict(folder=osp.abspath(folder), world_size=world_size,
                                     zero_stage=stage)
    return full, meta

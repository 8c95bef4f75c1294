"""Sharded FSDP checkpoints -> one full state dict, offline (no FSDP, no process group).

A sharded checkpoint of ``FSDPStrategy(state_dict_cfg='local')`` (with the checks of
:mod:`mmmixmae.compat.fsdp`) is a folder ``iter_N.pth/`` holding ``rank0.pth ..
rank{W-1}.pth``.  In each file, ``state_dict`` has for every FSDP unit ``U``:

* ``U._flat_param`` (root: ``_flat_param``): this rank's slice of the unit's flattened
  parameters, stored by :func:`mmmixmae.compat.fsdp.to_plain` as
  ``{'global_size': [N], 'shards': [{'tensor', 'offsets': [o], ...}]}``;
* with ``use_orig_params=True`` also one 1-D local view per original parameter (redundant:
  the flat slice holds the same numbers), and every buffer in full.

``meta['fsdp']['flat_params']`` (written by :func:`flat_param_layouts` at save time) says how
each unit's ``N`` elements split into parameters.  :func:`consolidate_sharded` puts the slices
of all ranks together, cuts them into parameters and returns the state dict that
``FSDP.state_dict()`` gives under ``FULL_STATE_DICT`` -- same keys, same values, bit for bit
(fp32 shards are copied, never cast) -- which fine-tuning (``init_cfg=Pretrained``), mmdet and
mmseg read.  The optimizer state is not consolidated (it is only of use for resuming, which
reads the shards themselves).

The shard-folder check (:func:`check_shard_folder`), the wrapper-free names
(:func:`clean_name`) and :func:`flat_param_layouts` live here, below
:mod:`mmmixmae.compat.fsdp`, which writes and reads the shards during training with them.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from .errors import InvalidCheckpointError
from .io import read_checkpoint

__all__ = ['ShardedCheckpointError', 'clean_name', 'check_shard_folder', 'flat_param_layouts',
           'read_shards', 'consolidate_sharded', 'save_full_checkpoint']

_FLAT = '_flat_param'
_SHARD_RE = re.compile(r'^rank(\d+)\.pth$')


class ShardedCheckpointError(RuntimeError):
    """A sharded checkpoint that does not fit this run (ranks, wrap policy, files)."""


def clean_name(name: str) -> str:
    """``name`` without FSDP's and the checkpoint wrapper's module prefixes."""
    return re.sub(r'(^|\.)(_fsdp_wrapped_module|_checkpoint_wrapped_module)(?=\.|$)',
                  '', name).strip('.')


def check_shard_folder(folder: str, world_size: int) -> List[str]:
    """Check that ``folder`` holds exactly ``rank0.pth .. rank{world_size-1}.pth``.

    Returns:
        list[str]: the shard paths in rank order.

    Raises:
        ShardedCheckpointError: naming the folder and what is wrong.
    """
    if not osp.isdir(folder):
        what = 'a file' if osp.isfile(folder) else 'missing'
        raise ShardedCheckpointError(
            f'sharded checkpoint {folder} is {what}: FSDPStrategy with '
            "state_dict_cfg='local' reads a folder of rank<i>.pth files (for one file, save "
            "with state_dict_cfg='full')")
    ranks = sorted(int(m.group(1)) for m in map(_SHARD_RE.match, os.listdir(folder)) if m)
    missing = sorted(set(range(world_size)) - set(ranks))
    if missing:
        raise ShardedCheckpointError(
            f'sharded checkpoint {folder}: shard(s) '
            f'{", ".join(f"rank{r}.pth" for r in missing)} missing for this run of '
            f'{world_size} ranks (found {len(ranks)}: {ranks})')
    extra = sorted(set(ranks) - set(range(world_size)))
    if extra:
        raise ShardedCheckpointError(
            f'sharded checkpoint {folder} has {len(ranks)} shards (written by {len(ranks)} '
            f'ranks) but this run has {world_size}; resume with the same number of ranks')
    return [osp.join(folder, f'rank{r}.pth') for r in range(world_size)]


def flat_param_layouts(model: nn.Module) -> Dict[str, dict]:
    """How each FSDP unit's flat parameter is laid out (recorded in every shard's meta).

    Returns:
        dict: unit name (as :func:`mmmixmae.compat.fsdp.fsdp_unit_names`) -> ``dict(names,
        shapes, numels, padding, shared)``: segment ``i`` of the unpadded flat parameter has
        ``numels[i]`` elements, an alignment gap where ``padding[i]``, else the next of
        ``names`` (full names) in the next of ``shapes``; ``shared``: ``[name, source]``
        pairs of tied parameters.  Units without parameters are left out.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    layouts = {}
    for name, module in model.named_modules():
        handle = module._handle if isinstance(module, FSDP) else None
        if handle is None:
            continue
        unit, flat = clean_name(name), handle.flat_param
        if not all(flat._contiguities):
            raise ShardedCheckpointError(
                f'FSDP unit {unit!r} holds a non-contiguous parameter: its flat layout '
                'cannot be recorded for consolidation')

        def full(*parts: str, unit: str = unit) -> str:
            return clean_name('.'.join(p for p in (unit, ) + parts if p))

        layouts[unit] = dict(
            names=[full(fqn) for fqn in flat._fqns],
            shapes=[list(shape) for shape in flat._shapes],
            numels=[int(n) for n in flat._numels_with_padding],
            padding=[bool(p) for p in flat._is_padding_mask],
            shared=[[full(i.module_name, i.param_name),
                     full(i.prim_module_name, i.prim_param_name)]
                    for i in flat._shared_param_infos])
    return layouts


def read_shards(folder: str) -> List[Dict[str, Any]]:
    """Read every shard of ``folder`` (weights-only) after checking the set of files.

    The number of ranks comes from ``rank0.pth``'s ``meta.fsdp.world_size``; a missing or
    extra ``rank<i>.pth``, a shard of another run (world size, wrap units) or one without the
    layout record raises, naming the file.
    """
    first = osp.join(folder, 'rank0.pth')
    if osp.isdir(folder) and not osp.isfile(first):
        raise InvalidCheckpointError(
            f'sharded checkpoint {folder}: rank0.pth is missing (it records the number of '
            'ranks and the flat-parameter layout)', folder)
    info0 = _fsdp_meta(read_checkpoint(first) if osp.isfile(first) else {}, first)
    try:
        paths = check_shard_folder(folder, info0['world_size'])
    except ShardedCheckpointError as err:  # the training-time check, as a checkpoint error
        raise InvalidCheckpointError(str(err), folder) from None
    shards = []
    for rank, path in enumerate(paths):
        checkpoint = read_checkpoint(path)
        info = _fsdp_meta(checkpoint, path)
        for key in ('world_size', 'units', 'flat_params'):
            if info[key] != info0[key]:
                raise InvalidCheckpointError(
                    f'{path}: meta.fsdp.{key} differs from rank0.pth: the shards come from '
                    'different runs', path)
        shards.append(checkpoint)
    return shards


def _fsdp_meta(checkpoint: Dict[str, Any], path: str) -> dict:
    info = (checkpoint.get('meta') or {}).get('fsdp')
    if not isinstance(info, dict) or 'flat_params' not in info:
        raise InvalidCheckpointError(
            f'{path}: no meta.fsdp.flat_params record; only sharded checkpoints written with '
            'mmmixmae.compat.fsdp (FSDPStrategy, state_dict_cfg=\'local\') can be '
            'consolidated', path)
    return info


def _assemble(key: str, pieces: Sequence[Any], folder: str) -> torch.Tensor:
    """The full 1-D flat parameter ``key`` from each rank's plain slice.

    Raises if the slices do not tile ``[0, global_size)`` exactly (a gap or an overlap).
    """
    size = int(pieces[0]['global_size'][0])
    parts = sorted(((int(s['offsets'][0]), s['tensor'].reshape(-1))
                    for piece in pieces for s in piece['shards']), key=lambda p: p[0])
    position = 0
    for offset, tensor in parts:
        if offset != position:
            raise InvalidCheckpointError(
                f'sharded checkpoint {folder}: {key} has elements {position}..{offset - 1} '
                f'in no shard (or shards overlap at {offset}) of {size}', folder)
        position += tensor.numel()
    if position != size:
        raise InvalidCheckpointError(
            f'sharded checkpoint {folder}: {key} shards hold {position} of {size} elements',
            folder)
    return torch.cat([t for _, t in parts]) if parts else torch.empty(0)


def _split(flat: torch.Tensor, layout: dict) -> Dict[str, torch.Tensor]:
    """Cut a unit's flat parameter (``sum(layout['numels'])`` elements) into parameters."""
    out, names, shapes = {}, iter(layout['names']), iter(layout['shapes'])
    for segment, is_padding in zip(torch.split(flat, layout['numels']), layout['padding']):
        if not is_padding:
            out[next(names)] = segment.reshape(next(shapes)).clone()
    for name, source in layout['shared']:
        out[name] = out[source]
    return out


def _unit_key(unit: str) -> str:
    return f'{unit}.{_FLAT}' if unit else _FLAT


def consolidate_sharded(folder: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """The full (unsharded) state dict of the sharded checkpoint ``folder``.

    Returns:
        tuple: the state dict, in the model's key order, and rank 0's ``meta`` (without
        ``fsdp``; ``consolidated_from`` names the folder and its number of ranks).
    """
    shards = read_shards(folder)
    states = [s['state_dict'] for s in shards]
    layouts = shards[0]['meta']['fsdp']['flat_params']
    params: Dict[str, torch.Tensor] = {}
    for unit, layout in layouts.items():
        key = _unit_key(unit)
        absent = [r for r, state in enumerate(states) if key not in state]
        if absent:
            raise InvalidCheckpointError(
                f'sharded checkpoint {folder}: rank{absent[0]}.pth has no {key} for FSDP unit '
                f'{unit!r}', folder)
        flat = _assemble(key, [state[key] for state in states], folder)
        if flat.numel() != sum(layout['numels']):
            raise InvalidCheckpointError(
                f'sharded checkpoint {folder}: {key} has {flat.numel()} elements, its layout '
                f'{sum(layout["numels"])}', folder)
        params.update(_split(flat, layout))
    full: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in states[0].items():
        if key == _FLAT or key.endswith('.' + _FLAT):
            continue
        if key in params:
            full[key] = params[key]
            continue
        for rank, state in enumerate(states[1:], 1):  # buffers: the same on every rank
            if key not in state or not torch.equal(state[key], value):
                raise InvalidCheckpointError(
                    f'sharded checkpoint {folder}: buffer {key} differs between rank0.pth '
                    f'and rank{rank}.pth', folder)
        full[key] = value.clone()
    for key, value in params.items():  # use_orig_params=False: no per-parameter entries
        full.setdefault(key, value)
    meta = {k: v for k, v in shards[0]['meta'].items() if k != 'fsdp'}
    meta['consolidated_from'] = dict(folder=osp.abspath(folder), world_size=len(shards))
    return full, meta


def save_full_checkpoint(state_dict: Dict[str, torch.Tensor], meta: dict, out: str) -> None:
    """Write ``{'meta', 'state_dict'}`` (mmengine's layout; weights-only readable)."""
    torch.save(dict(meta=meta, state_dict=state_dict), out)

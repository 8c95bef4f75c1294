"""Fixes and start-up checks for mmengine 0.10.7's ``FSDPStrategy`` (FlexibleRunner).

:func:`apply` is called from :func:`mmmixmae.compat.apply_compat`.  It refuses to run on an
mmengine or torch it was not written for (:data:`SUPPORTED`).

1. CPU hosts (no CUDA).  ``DDPStrategy._wrap_model`` passes ``device_ids=[LOCAL_RANK]``,
   which DDP refuses for a CPU module; without CUDA the patched one gives
   ``device_ids=None`` (for DDP-type wrappers, unless the config sets them).
   ``FSDPStrategy._wrap_model`` passes ``device_id=int(LOCAL_RANK)``,
   which FSDP turns into ``cuda:LOCAL_RANK`` ("Found no NVIDIA driver"); and FSDP refuses
   ``sync_module_states=True`` for CPU tensors.  Without CUDA the patched ``_wrap_model``
   gives ``device_id=torch.device('cpu')`` unless the config sets one, and, when
   ``sync_module_states=True`` is asked for, broadcasts rank 0's parameters and buffers over
   the (gloo) process group itself before wrapping and lets FSDP skip its own sync -- the
   same result: every rank starts from rank 0's weights.
2. A sharded strategy without a distributed launcher stops at start, naming the setting
   (mmengine would fail later inside FSDP with "Default process group has not been
   initialized").
3. Sharded (``state_dict_cfg='local'``) checkpoints.  mmengine writes ``<ckpt>/rank{i}.pth``
   per rank and reads back only its own file with ``strict=False``, so a checkpoint from a
   different number of ranks or a different wrap policy is loaded partially without a word,
   and a missing shard surfaces as a bare "file not found" on one rank.  The patched
   strategy stores ``meta['fsdp'] = {world_size, state_dict_type, units, flat_params}``
   (``units``: the names of the FSDP-wrapped modules; ``flat_params``: the layout that
   :mod:`mmmixmae.checkpoint.sharded` consolidates with) in each file, and on load checks, before touching the
   model: the folder exists, it holds exactly ``rank0.pth .. rank{N-1}.pth`` for this run's
   ``N`` ranks, and the stored world size and units equal this run's; the model state must
   have this run's keys and shard shapes, and after the load each local shard must equal the
   file's bit for bit.  ShardedTensors are stored as plain tensors plus their offsets
   (:func:`to_plain`), because the safe loader (``weights_only=True``) refuses torch's
   sharding classes.  Each error names the file and the setting.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn

from ..checkpoint.sharded import ShardedCheckpointError, check_shard_folder, clean_name
from ._guard import check_versions

__all__ = ['SUPPORTED', 'apply', 'ShardedCheckpointError', 'fsdp_unit_names',
           'clean_name',
           'check_shard_folder', 'to_plain', 'from_plain']

#: mmengine: the release whose _strategy/fsdp.py these patches were written against;
#: torch: FSDP1 with LOCAL_STATE_DICT and ``use_orig_params`` as checked
SUPPORTED = dict(mmengine=('0.10.7', ),
                 torch=tuple(f'2.{minor}' for minor in range(4, 15)))

_MARK = '_mmmixmae_compat_fsdp_patched'


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def fsdp_unit_names(model: nn.Module) -> List[str]:
    """Names (without FSDP's wrapper prefixes) of the FSDP-wrapped submodules of ``model``,
    the root as ``''``: they identify the wrap policy a sharded state dict belongs to."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    return [clean_name(name) for name, module in model.named_modules()
            if isinstance(module, FSDP)]


def _broadcast_module_states(module: nn.Module) -> None:
    """Rank 0's parameters and buffers to every rank (what ``sync_module_states`` does)."""
    import torch.distributed as dist
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


# ---------------------------------------------------------------------------
# patches
# ---------------------------------------------------------------------------
def refuse_without_launcher(cls: type) -> None:
    """``cls.__init__`` raises, naming the setting, when the runner has no distributed launcher
    (used for ``FSDPStrategy`` here and ``DeepSpeedStrategy`` in :mod:`.deepspeed_strategy`);
    idempotent."""
    original = cls.__init__
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        env = kwargs.get('env_kwargs') or {}
        launcher = env.get('launcher', 'none') if isinstance(env, dict) else 'none'
        if launcher in (None, 'none'):
            raise RuntimeError(
                f"strategy={cls.__name__} (runner_type='FlexibleRunner') shards the model "
                'across processes and needs a distributed launcher, but launcher=\'none\'. '
                'Start it with tools/dist_train.sh CONFIG N (or tools/slurm_train.sh, or '
                'python -m torch.distributed.run ... tools/train.py CONFIG --launcher '
                'pytorch); for one process use a config without the strategy.')
        original(self, *args, **kwargs)

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__


def _fsdp_cpu_wrapper(cfg: dict, model: nn.Module) -> dict:
    """FSDP on CPU: ``device_id=cpu``; ``sync_module_states`` done over gloo by hand."""
    cfg.setdefault('device_id', torch.device('cpu'))
    if cfg.get('sync_module_states', False):
        cfg['sync_module_states'] = False
        _broadcast_module_states(model)
    return cfg


def _ddp_cpu_wrapper(cfg: dict, model: nn.Module) -> dict:
    """DDP on CPU: ``device_ids=None`` for DDP-type wrappers (unless the config sets them)."""
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    wrapper = cfg.get('type', 'MMDistributedDataParallel')
    wrapper = MODEL_WRAPPERS.get(wrapper) if isinstance(wrapper, str) else wrapper
    if isinstance(wrapper, type) and issubclass(wrapper, DistributedDataParallel):
        cfg.setdefault('device_ids', None)
    return cfg


def _patch_wrap_model(cls: type, default: dict,
                      fix: Callable[[dict, nn.Module], dict]) -> None:
    """Without CUDA, ``cls._wrap_model`` first passes its ``model_wrapper`` config (or
    ``default``) through ``fix(cfg, model)``; with CUDA it is left as it is."""
    original = cls._wrap_model

    @functools.wraps(original)
    def _wrap_model(self, model: nn.Module):
        if not torch.cuda.is_available():
            self.model_wrapper = fix(dict(self.model_wrapper or default), model)
        return original(self, model)

    setattr(_wrap_model, _MARK, True)
    cls._wrap_model = _wrap_model


def _patch_build_optim_wrapper(cls: type) -> None:
    original = cls.build_optim_wrapper

    @functools.wraps(original)
    def build_optim_wrapper(self, optim_wrapper, model: Optional[nn.Module] = None):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        if isinstance(optim_wrapper, dict) and isinstance(model, FSDP):
            # the constructors read param.ndim (no decay for 1-D, flat_decay_mult); outside
            # forward, FSDP's use_orig_params views are 1-D shards of every parameter
            with FSDP.summon_full_params(model, writeback=False):
                return original(self, optim_wrapper, model)
        return original(self, optim_wrapper, model)

    setattr(build_optim_wrapper, _MARK, True)
    cls.build_optim_wrapper = build_optim_wrapper


def _patch_checkpoint_io(cls: type) -> None:
    from mmengine.dist import get_world_size
    original_save = cls.save_checkpoint
    original_load = cls.load_checkpoint
    original_load_model = cls.load_model_state_dict

    @functools.wraps(original_save)
    def save_checkpoint(self, filename: str, *, extra_ckpt: Optional[dict] = None, **kwargs):
        from mmmixmae.checkpoint.sharded import flat_param_layouts
        extra_ckpt = dict(extra_ckpt or {})
        meta = dict(extra_ckpt.get('meta') or {})
        meta['fsdp'] = dict(world_size=get_world_size(),
                            state_dict_type=self.state_dict_type.name,
                            units=fsdp_unit_names(self.model),
                            flat_params=flat_param_layouts(self.model))  # consolidation
        extra_ckpt['meta'] = meta
        if not self._is_full_state_dict():
            user_callback = kwargs.pop('callback', None)

            def callback(checkpoint: Dict[str, Any]) -> None:
                for key in ('state_dict', 'optimizer'):
                    if key in checkpoint:
                        checkpoint[key] = to_plain(checkpoint[key])
                if user_callback is not None:
                    user_callback(checkpoint)

            kwargs['callback'] = callback
        return original_save(self, filename, extra_ckpt=extra_ckpt, **kwargs)

    @functools.wraps(original_load)
    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        if self._is_full_state_dict():
            self._mmmixmae_loading = None
            return original_load(self, filename, **kwargs)
        from mmengine.dist import get_rank
        shards = check_shard_folder(filename, get_world_size())
        self._mmmixmae_loading = shards[get_rank()]
        user_callback = kwargs.pop('callback', None)

        def callback(checkpoint: Dict[str, Any]) -> None:
            _check_sharded_meta(self, checkpoint, self._mmmixmae_loading)
            for key in ('state_dict', 'optimizer'):
                if key in checkpoint:
                    checkpoint[key] = from_plain(checkpoint[key])
            if user_callback is not None:
                user_callback(checkpoint)

        return original_load(self, filename, callback=callback, **kwargs)

    @functools.wraps(original_load_model)
    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False, **kwargs):
        path = getattr(self, '_mmmixmae_loading', None)
        if path is None or self._is_full_state_dict():
            return original_load_model(self, state_dict, strict=strict, **kwargs)
        _check_sharded_keys(self.model.state_dict(), state_dict, path)
        # keys and shard shapes are checked above; FSDP's own strict check would list the
        # ``_flat_param`` keys its LOCAL_STATE_DICT pre-hook consumes as unexpected
        original_load_model(self, state_dict, strict=False, **kwargs)
        _check_loaded(self.model.state_dict(), state_dict, path)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        # mmengine 0.10.7 calls FSDP.optim_state_dict_to_load(state_dict, model, optim), the
        # argument order of torch < 2.1; torch >= 2.1 takes (model, optim, state_dict)
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        optimizer = self.optim_wrapper.optimizer
        self.optim_wrapper.load_state_dict(
            FSDP.optim_state_dict_to_load(self.model, optimizer, state_dict))

    cls.load_optim_state_dict = load_optim_state_dict
    for fn in (save_checkpoint, load_checkpoint, load_model_state_dict, load_optim_state_dict):
        setattr(fn, _MARK, True)
    cls.save_checkpoint = save_checkpoint
    cls.load_checkpoint = load_checkpoint
    cls.load_model_state_dict = load_model_state_dict


def _check_sharded_meta(strategy: Any, checkpoint: Dict[str, Any], path: str) -> None:
    from mmengine.dist import get_world_size
    info = (checkpoint.get('meta') or {}).get('fsdp')
    if info is None:
        raise ShardedCheckpointError(
            f'{path} has no meta.fsdp record (world size, wrap units), so it cannot be '
            'checked against this run; it was not written by a sharded mmmixmae run')
    if info['world_size'] != get_world_size():
        raise ShardedCheckpointError(
            f'{path} was written by {info["world_size"]} ranks; this run has '
            f'{get_world_size()}. Resume with the same number of ranks')
    units = fsdp_unit_names(strategy.model)
    if list(info['units']) != units:
        theirs, ours = set(info['units']), set(units)
        raise ShardedCheckpointError(
            f'{path} was written with a different FSDP wrap policy '
            '(strategy.model_wrapper.auto_wrap_policy): '
            f'{len(info["units"])} units in the file, {len(units)} in this run; only in the '
            f'file: {sorted(theirs - ours)[:5]}, only in this run: {sorted(ours - theirs)[:5]}')


def _check_sharded_keys(expected: Dict[str, Any], loaded: Dict[str, Any], path: str) -> None:
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    if missing or unexpected:
        raise ShardedCheckpointError(
            f'{path}: sharded state dict keys differ from this model '
            f'(missing {missing[:5]}, unexpected {unexpected[:5]}); different model or wrap '
            'policy')
    for key, value in expected.items():
        ours, theirs = _local_shape(value), _local_shape(loaded[key])
        if ours != theirs:
            raise ShardedCheckpointError(
                f'{path}: shard {key} has shape {theirs}, this run expects {ours} '
                '(different number of ranks or wrap policy)')


_PLAIN = '_mmmixmae_sharded_tensor'


def to_plain(obj: Any) -> Any:
    """Replace every ``ShardedTensor`` in a (nested) state dict by a plain dict of its local
    shards and global size, so the file loads with ``torch.load(weights_only=True)``: a pickled
    ShardedTensor needs torch's private sharding classes (refused by the safe loader) and a
    live process group to unpickle.  :func:`from_plain` undoes it."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor
    if isinstance(obj, ShardedTensor):
        return {_PLAIN: 1, 'global_size': list(obj.size()), 'shards': [
            dict(tensor=shard.tensor.detach().clone(),
                 offsets=list(shard.metadata.shard_offsets),
                 sizes=list(shard.metadata.shard_sizes),
                 placement=str(shard.metadata.placement)) for shard in obj.local_shards()]}
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """Rebuild the ``ShardedTensor``s recorded by :func:`to_plain` (collective: every rank
    calls it on its own shard file, in the same key order)."""
    if isinstance(obj, dict) and obj.get(_PLAIN) == 1:
        from torch.distributed._shard.metadata import ShardMetadata
        from torch.distributed._shard.sharded_tensor import Shard, init_from_local_shards
        shards = [Shard(tensor=s['tensor'], metadata=ShardMetadata(
            shard_offsets=s['offsets'], shard_sizes=s['sizes'], placement=s['placement']))
            for s in obj['shards']]
        return init_from_local_shards(shards, *obj['global_size'])
    if isinstance(obj, dict):
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_plain(v) for v in obj)
    return obj


def _local_values(value: Any) -> List[torch.Tensor]:
    from torch.distributed._shard.sharded_tensor import ShardedTensor
    if isinstance(value, ShardedTensor):
        return [s.tensor for s in value.local_shards()]
    return [value] if isinstance(value, torch.Tensor) else []


def _check_loaded(now: Dict[str, Any], loaded: Dict[str, Any], path: str) -> None:
    """After the load, this rank's shards must equal the file's, bit for bit."""
    for key, value in loaded.items():
        for ours, theirs in zip(_local_values(now[key]), _local_values(value)):
            if not torch.equal(ours.to(theirs.device), theirs):
                raise ShardedCheckpointError(
                    f'{path}: shard {key} was not loaded into the model (FSDP left different '
                    'values); the checkpoint does not fit this run')


def _local_shape(value: Any) -> Optional[tuple]:
    from torch.distributed._shard.sharded_tensor import ShardedTensor
    if isinstance(value, ShardedTensor):
        return tuple(tuple(s.tensor.shape) for s in value.local_shards())
    return tuple(value.shape) if hasattr(value, 'shape') else None


def apply() -> None:
    """Install the fixes above into mmengine's ``FSDPStrategy`` (idempotent)."""
    check_versions(__name__, SUPPORTED)
    from mmengine._strategy import DDPStrategy, FSDPStrategy
    if getattr(FSDPStrategy._wrap_model, _MARK, False):
        return
    _patch_wrap_model(DDPStrategy, dict(type='MMDistributedDataParallel',
                                        broadcast_buffers=False), _ddp_cpu_wrapper)
    refuse_without_launcher(FSDPStrategy)
    _patch_wrap_model(FSDPStrategy, dict(type='MMFullyShardedDataParallel'), _fsdp_cpu_wrapper)
    _patch_build_optim_wrapper(FSDPStrategy)
    _patch_checkpoint_io(FSDPStrategy)

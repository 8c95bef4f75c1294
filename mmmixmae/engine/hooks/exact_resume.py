"""Exact resume: random-number-generator state in checkpoints, strict weight loading.

mmengine 0.10.7 saves the model, optimizer, parameter schedulers, message hub and
``meta`` (epoch, iteration, seed) in a checkpoint, but no random-number-generator state:
on resume :meth:`Runner.set_randomness` has seeded the generators from the config seed at
start-up, so everything random after the resume point (MixMAE's mixing mask and ratio,
drop path, data augmentation in the main process) differs from the uninterrupted run.

:class:`ExactResumeHook` closes that gap:

* when a checkpoint is written it stores, under the checkpoint key ``'rng_state'``, the
  state of torch's CPU generator (and the current CUDA device's, when CUDA is in use),
  numpy's legacy global generator and Python's :mod:`random`, **for every rank**
  (gathered with ``all_gather_object`` on the iterations a :class:`CheckpointHook` will
  save at, because mmengine writes the checkpoint on rank 0 only).  Everything is stored as
  tensors, ints, floats and strings, so ``torch.load(weights_only=True)`` reads it with no
  allowlist entry;
* on ``--resume`` each rank restores its own state at the moment the data pipeline is
  about to produce the first batch after the resume point.  The resumable loops of
  :mod:`mmmixmae.engine.runner` fire the ``after_train_data_iter_created`` event there
  (after the dataloader iterator has drawn its base seed, before any sample is
  loaded); with mmengine's own loops the state is restored at the first
  ``before_train_iter`` instead (too late for transforms that run in the main process,
  which is logged);
* before the weights are copied (``after_load_checkpoint`` runs before mmengine loads the
  state dict) it checks that the checkpoint fits the model: a resume must match key for
  key and shape for shape (after the backbone's documented interpolation of position
  embeddings and relative-position tables), a ``load_from`` must have no shape mismatch
  and share at least one key with the model.  mmengine itself only warns and keeps the
  random initialisation of everything that does not fit.  Not for sharded strategies:
  FSDP's shards are checked by :mod:`mmmixmae.compat.fsdp`, and under DeepSpeed the
  engine has already loaded the module strictly when the hook runs
  (:mod:`mmmixmae.compat.deepspeed_strategy`).
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...checkpoint import CheckpointMismatchError, revise_keys

__all__ = [
    'ExactResumeHook', 'capture_rng_state', 'restore_rng_state',
    'check_state_dict_fits', 'RNG_STATE_KEY', 'DATA_ITER_EVENT'
]

#: Top-level checkpoint key holding the list of per-rank generator states.
RNG_STATE_KEY = 'rng_state'
#: Hook event fired by the resumable loops right after the train dataloader iterator
#: has been created and before its first batch is fetched.
DATA_ITER_EVENT = 'after_train_data_iter_created'


# --------------------------------------------------------------------------- RNG state
def capture_rng_state() -> Dict[str, Any]:
    """The global generators of this process as a ``weights_only``-loadable dict."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch_cpu=torch.get_rng_state(),
        numpy=dict(kind=str(kind), keys=torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        python=dict(version=int(version), internal=torch.tensor(internal, dtype=torch.int64),
                    gauss_next=None if gauss_next is None else float(gauss_next)))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['torch_cuda'] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state['torch_cpu'])
    np_state = state['numpy']
    np.random.set_state((np_state['kind'], np_state['keys'].numpy().astype(np.uint32),
                         np_state['pos'], np_state['has_gauss'], np_state['cached_gaussian']))
    py = state['python']
    random.setstate((py['version'], tuple(int(v) for v in py['internal'].tolist()),
                     py['gauss_next']))
    if 'torch_cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['torch_cuda'])


# --------------------------------------------------------------------------- weights
def check_state_dict_fits(model: torch.nn.Module, checkpoint: dict, source: str,
                          strict: bool) -> None:
    """Raise :class:`CheckpointMismatchError` when ``checkpoint`` does not fit ``model``.

    The weights are loaded with :meth:`torch.nn.Module.load_state_dict`, so the model's
    own load pre-hooks (MixMAESwin interpolates ``absolute_pos_embed`` and every
    ``relative_position_bias_table`` to its grid and windows) run first; whatever they
    cannot adapt is reported by name.  ``strict`` also refuses missing and unexpected
    keys (resume); otherwise only shape mismatches and a checkpoint sharing no key with
    the model are refused (``load_from``, where e.g. a decoder or head may legitimately
    be absent; mmengine logs those keys).
    """
    # exactly what mmengine's Runner loads: checkpoint['state_dict'], else the whole dict
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) \
        else checkpoint
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(source, message=(
            f'{source}: holds a {type(state_dict).__name__}, not a state dict'))
    state_dict = revise_keys(state_dict)
    model_keys = set(model.state_dict().keys())
    if not model_keys & set(state_dict.keys()):
        shown = sorted(state_dict.keys())[:8]
        raise CheckpointMismatchError(source, message=(
            f'{source} shares no parameter name with {type(model).__name__}: the checkpoint '
            f'holds {shown}{" ..." if len(state_dict) > 8 else ""} (e.g. an official '
            'checkpoint keeps its weights under "model": convert it first)'))
    try:
        model.load_state_dict(state_dict, strict=strict)
    except RuntimeError as err:
        what = 'resume' if strict else 'load_from'
        raise CheckpointMismatchError(source, message=(
            f'{source} does not fit the model ({what} needs '
            f'{"identical keys and shapes" if strict else "matching shapes"} after the '
            f'documented interpolation of position embeddings and relative-position '
            f'tables): {err}')) from None


def _is_fsdp(model) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel
    return isinstance(model, FullyShardedDataParallel)


def _is_deepspeed(model) -> bool:
    """mmengine's ``MMDeepSpeedEngineWrapper`` (DeepSpeedStrategy) around a deepspeed engine."""
    from mmengine._strategy.deepspeed import MMDeepSpeedEngineWrapper
    return isinstance(model, MMDeepSpeedEngineWrapper)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


# --------------------------------------------------------------------------- the hook
def _saves_after_iter(hook: CheckpointHook, runner) -> bool:
    if hook.by_epoch:
        return False
    return bool(
        hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
        or (hook.save_last and hook.is_last_train_iter(runner)))


def _saves_after_epoch(hook: CheckpointHook, runner) -> bool:
    if not hook.by_epoch:
        return False
    return bool(
        hook.every_n_epochs(runner, hook.interval, hook.save_begin)
        or (hook.save_last and hook.is_last_train_epoch(runner)))


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save and restore every rank's RNG state; refuse checkpoints that do not fit.

    Args:
        strict_resume: a resumed checkpoint must match the model key for key and shape for
            shape (after the backbone's interpolation pre-hook).
        check_load_from: ``load_from`` checkpoints must have matching shapes and share at
            least one key with the model.

    Use it together with ``train_cfg.type='ResumableEpochBasedTrainLoop'`` (or
    ``'ResumableIterBasedTrainLoop'``), which continue a resumed epoch where it stopped
    instead of restarting it; see ``docs/en/reliability.md``.
    """
    priority = 'LOW'  # after_train_iter: before CheckpointHook (VERY_LOW)

    def __init__(self, strict_resume: bool = True, check_load_from: bool = True):
        self.strict_resume = strict_resume
        self.check_load_from = check_load_from
        self._prepared: Optional[List[Dict[str, Any]]] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._restored_by_loop = False

    # ----------------------------------------------------------------- saving
    def _prepare(self, runner) -> None:
        """Collect every rank's state (all ranks call this at the same point)."""
        local = capture_rng_state()
        if get_world_size() > 1:
            self._prepared = all_gather_object(local)
        else:
            self._prepared = [local]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if any(_saves_after_iter(h, runner) for h in runner.hooks
               if isinstance(h, CheckpointHook)):
            self._prepare(runner)

    def after_train_epoch(self, runner) -> None:
        if any(_saves_after_epoch(h, runner) for h in runner.hooks
               if isinstance(h, CheckpointHook)):
            self._prepare(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._prepared
        if states is None:  # a save we did not foresee (e.g. save_best): this rank only
            states = [capture_rng_state()]
            if get_world_size() > 1:
                runner.logger.warning(
                    'ExactResumeHook: this checkpoint holds the RNG state of rank 0 only; '
                    'a resume from it restores the other ranks from the seed')
        checkpoint[RNG_STATE_KEY] = states
        self._prepared = None

    # ----------------------------------------------------------------- loading
    def _source(self, runner) -> str:
        if getattr(runner, '_load_from', None):
            return f'checkpoint {runner._load_from}'
        from mmengine.runner import find_latest_checkpoint
        found = find_latest_checkpoint(runner.work_dir) if getattr(runner, '_resume', False) \
            else None
        return f'checkpoint {found}' if found else 'the checkpoint'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resuming = bool(getattr(runner, '_resume', False))
        source = self._source(runner)
        if _is_fsdp(runner.model):
            pass  # FSDPStrategy's loader checks shards strictly (mmmixmae.compat.fsdp)
        elif _is_deepspeed(runner.model):
            pass  # deepspeed's engine has loaded the module strictly (load_module_strict)
        elif resuming and self.strict_resume or not resuming and self.check_load_from:
            check_state_dict_fits(_unwrap(runner.model), checkpoint, source, strict=resuming)
        if not resuming:
            return
        states = checkpoint.get(RNG_STATE_KEY)
        if states is None:
            runner.logger.warning(
                f'ExactResumeHook: {source} holds no RNG state (written without this hook); '
                'random draws after the resume point will differ from an uninterrupted run')
            return
        rank, world = get_rank(), get_world_size()
        if len(states) != world:
            if len(states) == 1 and rank == 0 or len(states) > 1 and rank < len(states):
                self._pending = states[rank]
            runner.logger.warning(
                f'ExactResumeHook: the checkpoint holds RNG states of {len(states)} rank(s) '
                f'but this run has {world}; ranks without a saved state keep the seed\'s')
            if self._pending is None:
                return
        else:
            self._pending = states[rank]
        self._restored_by_loop = False

    def after_train_data_iter_created(self, runner) -> None:
        """Fired by the resumable loops once the epoch's data iterator exists."""
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None
            self._restored_by_loop = True

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._prepared = None  # a capture is only valid for the iteration it was made in
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None
            runner.logger.warning(
                'ExactResumeHook: the train loop does not fire '
                f'"{DATA_ITER_EVENT}", so the RNG state was restored after the first batch '
                'had been loaded; use ResumableEpochBasedTrainLoop / '
                'ResumableIterBasedTrainLoop for exact data augmentation after a resume')

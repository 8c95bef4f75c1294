"""Stop on a non-finite loss or a collapsed fp16 loss scale; bf16 with an fp16 fallback.

Policy (see ``docs/en/reliability.md``):

* a NaN or infinite ``loss`` stops training at that iteration with
  :class:`NonFiniteLossError`, whose message names the iteration, the epoch and the last
  checkpoint written (which is left untouched: the hook runs before the CheckpointHook of
  the same iteration, so nothing is saved from the poisoned state).  The official MixMIM
  code also exits on a non-finite loss, in fp16 as well;
* with a dynamic fp16 loss scaler (``AmpOptimWrapper(dtype='float16')``), an optimizer
  step that the scaler skips because of overflowing gradients lowers the scale; when the
  scale falls below ``min_loss_scale`` or ``max_skipped_steps`` steps in a row are skipped,
  training stops the same way instead of going on with a scale near zero and weights that
  no longer change;
* ``AmpOptimWrapper(dtype='bfloat16')`` (the pretraining configs' default) on a CUDA
  device without bf16 support (before Ampere) is switched to float16 with dynamic loss
  scaling before the first step, with a log line saying so.

In distributed training all ranks take the same decision (the non-finite flag is
all-reduced; the loss scale is identical on all ranks because DDP averages gradients), so
no rank is left waiting in a collective.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError', 'bf16_supported']


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN/Inf loss or a collapsed loss scale."""

    def __init__(self, message: str, iteration: int, last_checkpoint: Optional[str]):
        super().__init__(message)
        self.iteration = iteration
        self.last_checkpoint = last_checkpoint


def bf16_supported(device_type: str) -> bool:
    """Whether autocast to bfloat16 works on ``device_type`` here."""
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return True  # CPU autocast supports bfloat16; NPU/MLU/MUSA are left to mmengine


def _amp_wrappers(optim_wrapper):
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [w for w in optim_wrapper.values() if isinstance(w, AmpOptimWrapper)]
    return [optim_wrapper] if isinstance(optim_wrapper, AmpOptimWrapper) else []


def _device_type(runner) -> str:
    try:
        return next(runner.model.parameters()).device.type
    except StopIteration:
        return 'cpu'


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training on a non-finite loss or a collapsed loss scale.

    Args:
        loss_key: the log variable checked (``'loss'``, the total loss).
        min_loss_scale: stop when a dynamic loss scaler's scale falls below this.
        max_skipped_steps: stop after this many consecutive skipped optimizer steps.
        bf16_fallback: switch bfloat16 AMP to float16 where bf16 is not supported.
    """
    priority = 'ABOVE_NORMAL'  # after RankMeanLogVarsHook/RuntimeInfoHook, before checkpoints

    def __init__(self, loss_key: str = 'loss', min_loss_scale: float = 1.0,
                 max_skipped_steps: int = 20, bf16_fallback: bool = True):
        if min_loss_scale <= 0 or max_skipped_steps < 1:
            raise ValueError('min_loss_scale must be > 0 and max_skipped_steps >= 1, got '
                             f'{min_loss_scale}, {max_skipped_steps}')
        self.loss_key = loss_key
        self.min_loss_scale = float(min_loss_scale)
        self.max_skipped_steps = int(max_skipped_steps)
        self.bf16_fallback = bf16_fallback
        self._scale_before = {}
        self._skipped = 0

    # ------------------------------------------------------------------ precision
    def before_run(self, runner) -> None:
        if not self.bf16_fallback:
            return
        device = _device_type(runner)
        for wrapper in _amp_wrappers(runner.optim_wrapper):
            if wrapper.cast_dtype == torch.bfloat16 and not bf16_supported(device):
                name = torch.cuda.get_device_name() if device == 'cuda' else device
                runner.logger.warning(
                    f'{name} does not support bfloat16 autocast: falling back to float16 '
                    'with dynamic loss scaling (AmpOptimWrapper dtype float16)')
                wrapper.cast_dtype = torch.float16
                scaler = wrapper.loss_scaler
                if hasattr(scaler, 'is_enabled') and not scaler.is_enabled():
                    wrapper.loss_scaler = torch.amp.GradScaler(device)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _dynamic_scalers(runner):
        out = []
        for wrapper in _amp_wrappers(runner.optim_wrapper):
            scaler = wrapper.loss_scaler
            if scaler.is_enabled() and wrapper._scale_update_param is None:
                out.append(scaler)
        return out

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._scale_before = {id(s): s.get_scale() for s in self._dynamic_scalers(runner)}

    def _last_checkpoint(self, runner) -> Optional[str]:
        return runner.message_hub.get_info('last_ckpt')

    def _stop(self, runner, what: str) -> None:
        last = self._last_checkpoint(runner)
        where = (f'the last good checkpoint is {last} (resume with --resume {last})'
                 if last else 'no checkpoint has been saved yet')
        message = (f'{what} at iteration {runner.iter + 1} (epoch {runner.epoch + 1}); '
                   f'training stopped, {where}')
        runner.logger.error(message)
        raise NonFiniteLossError(message, runner.iter + 1, last)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        value = None if outputs is None else outputs.get(self.loss_key)
        bad = 0.0
        if value is not None:
            value = value.detach().float() if isinstance(value, torch.Tensor) else \
                torch.tensor(float(value))
            bad = 0.0 if bool(torch.isfinite(value).all()) else 1.0
        if get_world_size() > 1:
            flag = torch.tensor([bad], device=value.device if isinstance(
                value, torch.Tensor) else 'cpu')
            all_reduce(flag, op='max')
            bad = float(flag.item())
        if bad:
            shown = 'non-finite' if value is None or value.numel() != 1 else \
                ('NaN' if math.isnan(value.item()) else
                 ('Inf' if math.isinf(value.item()) else f'{value.item():g}'))
            self._stop(runner, f'{self.loss_key} became {shown} (on this or another rank)'
                       if get_world_size() > 1 else f'{self.loss_key} became {shown}')

        scalers = self._dynamic_scalers(runner)
        if not scalers:
            return
        skipped = False
        low = None
        for scaler in scalers:
            after = scaler.get_scale()
            before = self._scale_before.get(id(scaler), after)
            skipped = skipped or after < before
            if after < self.min_loss_scale:
                low = after
        self._skipped = self._skipped + 1 if skipped else 0
        if low is not None:
            self._stop(runner, f'the fp16 loss scale collapsed to {low:g} (below '
                       f'min_loss_scale={self.min_loss_scale:g}) after {self._skipped} '
                       'consecutive skipped optimizer steps with overflowing gradients')
        if self._skipped >= self.max_skipped_steps:
            self._stop(runner, f'{self._skipped} consecutive optimizer steps were skipped '
                       'because the fp16 gradients overflowed (loss scale now '
                       f'{min(s.get_scale() for s in scalers):g})')

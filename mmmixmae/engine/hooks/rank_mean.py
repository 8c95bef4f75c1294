"""Log the mean of the losses over all ranks, not rank 0's.

In mmengine 0.10.7 ``BaseModel.parse_losses`` returns this rank's losses, the
``RuntimeInfoHook`` (priority ``VERY_HIGH``) copies the ``outputs`` of ``train_step`` into
the message hub, and the ``LoggerHook`` prints rank 0's message hub.  So under DDP the
logged ``loss`` is the loss of rank 0's local batch only (unlike mmcv 1.x, whose
``_parse_losses`` all-reduced the log variables).

:class:`RankMeanLogVarsHook` runs first of all ``after_train_iter`` hooks (priority
``HIGHEST``) and replaces every scalar tensor in ``outputs`` by its mean over the ranks
(one ``all_reduce`` of a vector of a few floats per iteration), so every later hook --
message hub, logger, :class:`NonFiniteLossHook` -- sees the global mean.  Gradients are not
affected: DDP already averages them.
"""
from __future__ import annotations

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ['RankMeanLogVarsHook']


@HOOKS.register_module()
class RankMeanLogVarsHook(Hook):
    """Average the scalar log variables of ``train_step`` over all ranks."""
    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs or get_world_size() == 1:
            return
        keys = sorted(k for k, v in outputs.items()
                      if isinstance(v, torch.Tensor) and v.numel() == 1)
        if not keys:
            return
        values = torch.stack([outputs[k].detach().float().reshape(()) for k in keys])
        all_reduce(values, op='mean')
        for key, value in zip(keys, values):
            outputs[key] = value

"""A hook for the DeepSpeed tests' runs: every rank writes its per-iteration losses.

mmengine logs only rank 0's loss; comparing a 2-rank run with a one-process run of the same
global batch needs every rank's (the global loss is their mean).  Imported by the tests'
derived configs through ``custom_imports`` (tests/test_sharded is on the subprocess's
PYTHONPATH).
"""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordLossHook(Hook):
    """Append each iteration's ``loss`` to ``<work_dir>/losses_rank<r>.json`` (rewritten after
    every iteration; a resumed run continues the file of its own work dir)."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append([runner.iter + 1, float(outputs['loss'])])
        path = osp.join(runner.work_dir, f'losses_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.losses, f)

"""Train loops that continue a resumed epoch exactly where the checkpoint left it.

What mmengine 0.10.7 does on ``--resume`` (read from ``mmengine/runner/loops.py``):

* ``EpochBasedTrainLoop`` restores ``epoch`` and ``iter`` but starts the interrupted epoch
  from its first batch again: the batches trained before the checkpoint are trained twice,
  the epoch runs ``len(dataloader)`` more iterations, the run ends at a later iteration
  than an uninterrupted one, and ``batch_idx`` restarts at 0.
* ``IterBasedTrainLoop`` replays the data: it fetches (loads, decodes, augments) and throws
  away ``iter`` batches before training again, which takes as long as the data loading of
  the whole run so far.

The loops below skip the consumed part of the epoch at the level of the batch sampler
(indices only, nothing is loaded): :class:`DefaultSampler` and :class:`InfiniteSampler`
are deterministic functions of ``(seed, epoch)``, so the remaining indices are exactly those
the uninterrupted run would have used.  Right after the epoch's dataloader iterator exists
(it draws its worker base seed from torch's global generator) they fire the
``after_train_data_iter_created`` hook event, at which
:class:`~mmmixmae.engine.hooks.ExactResumeHook` restores the saved generator states, so the
first batch after the resume is augmented and mixed as in the uninterrupted run.
"""
from __future__ import annotations

import itertools

from mmengine.dataset import InfiniteSampler
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from ..hooks.exact_resume import DATA_ITER_EVENT

__all__ = ['ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop', 'DATA_ITER_EVENT']


class _SkipFirstBatches:
    """A batch sampler that leaves out the first ``skip`` batches of another."""

    def __init__(self, batch_sampler, skip: int):
        self.batch_sampler = batch_sampler
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.batch_sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name):
        return getattr(self.batch_sampler, name)


def _iter_skipping(dataloader, skip: int, make_iter=iter):
    """``make_iter(dataloader)`` with the first ``skip`` batches left out (indices only)."""
    if skip <= 0:
        return make_iter(dataloader)
    original = dataloader.batch_sampler
    if original is None:
        raise RuntimeError('cannot skip batches of a dataloader without a batch sampler')
    # DataLoader forbids re-assigning batch_sampler after construction; the iterator reads
    # it once, when it is created, so it is swapped only for that moment.
    object.__setattr__(dataloader, 'batch_sampler', _SkipFirstBatches(original, skip))
    try:
        return make_iter(dataloader)
    finally:
        object.__setattr__(dataloader, 'batch_sampler', original)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` whose resumed epoch continues at the next unseen batch.

    Same arguments as :class:`mmengine.runner.EpochBasedTrainLoop`.  Without a resume it
    behaves identically, apart from firing ``after_train_data_iter_created`` once per epoch.
    """

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        num_batches = len(self.dataloader)
        start = self._iter - self._epoch * num_batches
        if not 0 <= start <= num_batches:
            raise RuntimeError(
                f'cannot continue epoch {self._epoch} at iteration {self._iter}: an epoch '
                f'has {num_batches} batches here, so the checkpoint belongs to a run with '
                'a different dataset size, batch size or number of ranks')
        if start:
            print_log(
                f'Resuming epoch {self._epoch + 1} at batch {start + 1}/{num_batches}: '
                f'skipping the {start} batches trained before the checkpoint (indices only)',
                logger='current')
        iterator = _iter_skipping(self.dataloader, start)
        self.runner.call_hook(DATA_ITER_EVENT)
        for idx, data_batch in enumerate(iterator, start):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that skips consumed batches by index instead of loading them.

    With an :class:`InfiniteSampler` the first ``iter`` batches are skipped in one go; with
    a finite sampler the loop moves to epoch ``iter // len(dataloader)`` (``set_epoch``)
    and skips the rest of the batches there.
    """

    def run(self):
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._rebuild_iterator()
        else:
            self.runner.call_hook(DATA_ITER_EVENT)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _rebuild_iterator(self) -> None:
        loader = self.dataloader
        sampler = getattr(loader.batch_sampler, 'sampler', None)
        if isinstance(sampler, InfiniteSampler):
            # its index stream is one generator made at construction and shared by every
            # iterator; the iterator built with the loop may already have prefetched from
            # it (worker processes), so start the stream afresh from the seed
            sampler.indices = sampler._indices_of_rank()
            epoch, skip = 0, self._iter
        else:
            epoch, skip = divmod(self._iter, len(loader))
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(epoch)
        print_log(
            f'Resuming at iteration {self._iter + 1}: skipping {self._iter} consumed batches '
            'by index (no data is loaded)', logger='current')
        iterator = _iter_skipping(loader, skip, _InfiniteDataloaderIterator)
        iterator._epoch = epoch
        self.dataloader_iterator = iterator
        self.runner.call_hook(DATA_ITER_EVENT)

"""Crash-safe checkpoint writing.

How mmengine 0.10.7 writes a checkpoint (``CheckpointHook._save_checkpoint_with_step``,
``mmengine.runner.checkpoint.save_checkpoint``, ``LocalBackend.put``):

1. when ``max_keep_ckpts`` checkpoints exist, the oldest is **deleted first**;
2. the new file is written in place (``open(path, 'wb').write(...)``), so a crash leaves a
   truncated ``iter_N.pth`` under its final name;
3. ``last_checkpoint`` -- the file ``--resume`` without a path reads -- is rewritten in
   place (truncate, then write), with no ``fsync`` anywhere.

So a crash while saving can leave a truncated checkpoint, a ``last_checkpoint`` that is
empty or names a deleted file (``max_keep_ckpts=1``: the only good checkpoint was deleted
in step 1), or, after a power loss, a ``last_checkpoint`` naming a file whose data never
reached the disk.

:class:`AtomicCheckpointHook` keeps every feature of :class:`CheckpointHook` and changes
only the order and the way files are written, for local paths: the checkpoint goes to a
hidden temporary file in the same directory, is ``fsync``-ed and moved over its final
name with ``os.replace`` (atomic on POSIX and Windows); then ``last_checkpoint`` is
replaced the same way; only then are checkpoints beyond ``max_keep_ckpts`` deleted.  At
every instant ``last_checkpoint`` names a complete checkpoint.  Leftover temporary files
of a crashed save are removed when training starts again.
"""
from __future__ import annotations

import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'atomic_write_bytes', 'fsync_path', 'TMP_MARK']

TMP_MARK = '.tmp-'


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_path(path: str) -> None:
    """Flush a file written by someone else to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}{TMP_MARK}{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` with crash-safe saving (same arguments).

    Non-local ``out_dir`` backends (``backend_args`` for S3, Petrel, ...) are saved by
    mmengine's own code, which is logged once.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            pattern = osp.join(self.out_dir, f'.*{TMP_MARK}*')
            for stale in glob.glob(pattern):
                runner.logger.warning(f'removing the partial checkpoint of an interrupted '
                                      f'save: {stale}')
                os.remove(stale)

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            if not getattr(self, '_warned_backend', False):
                runner.logger.warning(
                    'AtomicCheckpointHook: out_dir is not a local path, checkpoints are '
                    'written by mmengine without the atomic replace')
                self._warned_backend = True
            return super()._save_checkpoint_with_step(runner, step, meta)

        stale_step = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale_step = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        final = osp.join(self.out_dir, filename)
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', final)
        tmp_name = f'.{filename}{TMP_MARK}{os.getpid()}'
        tmp = osp.join(self.out_dir, tmp_name)
        runner.save_checkpoint(
            self.out_dir,
            tmp_name,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_dir(self.out_dir)
        atomic_write_bytes(osp.join(runner.work_dir, 'last_checkpoint'), final.encode())
        if stale_step is not None and stale_step != step:
            stale = osp.join(self.out_dir, self.filename_tmpl.format(stale_step))
            if osp.isfile(stale):
                os.remove(stale)

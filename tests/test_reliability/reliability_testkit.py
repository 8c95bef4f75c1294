"""Test-only hooks and data builders for tests/test_reliability.

Configs reach this module through ``custom_imports`` (the tests put this folder on
``PYTHONPATH``).  The hooks inject faults (SIGKILL, NaN/Inf loss, overflowing gradients, a
crash while a checkpoint is being written) and record what happened (batches, masks,
losses, parameters) in the work dir; nothing here is used by the library.
"""
import hashlib
import json
import os
import os.path as osp
import signal

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from PIL import Image

PHOTOS = ('2011_000003.jpg', '2011_000006.jpg', '2011_000025.jpg')


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def photo_paths(shared_data):
    return [osp.join(shared_data, 'coco_voc3', 'JPEGImages', p) for p in PHOTOS]


def crops_of(path, count, size=96):
    """``count`` deterministic square crops of a real photo, resized to ``size``."""
    img = Image.open(path).convert('RGB')
    w, h = img.size
    out = []
    for k in range(count):
        side = int(min(w, h) * (0.5 + 0.4 * ((k * 37) % 11) / 10))
        x0 = (k * 53) % max(1, w - side)
        y0 = (k * 29) % max(1, h - side)
        out.append(img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size),
                                                                    Image.BICUBIC))
    return out


def build_photo_folder(dst, shared_data, total=16, size=96):
    """A flat folder of ``total`` JPEG crops of the three real VOC photos."""
    os.makedirs(dst, exist_ok=True)
    paths = photo_paths(shared_data)
    per = -(-total // len(paths))
    n = 0
    for i, path in enumerate(paths):
        for j, crop in enumerate(crops_of(path, per, size)):
            if n == total:
                break
            crop.save(osp.join(dst, f'img_{i}_{j:02d}.jpg'), quality=92)
            n += 1
    return dst


def build_labelled_folder(dst, shared_data, per_class=4, size=96):
    """``class_{k}/`` sub-folders, one class per real photo, ``per_class`` crops each."""
    for k, path in enumerate(photo_paths(shared_data)):
        folder = osp.join(dst, f'class_{k}')
        os.makedirs(folder, exist_ok=True)
        for j, crop in enumerate(crops_of(path, per_class, size)):
            crop.save(osp.join(folder, f'{j:02d}.jpg'), quality=92)
    return dst


def _dump_line(path, record):
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')
        f.flush()


@HOOKS.register_module()
class RecordBatchHook(Hook):
    """Append one JSON line per iteration to ``records_rank{R}.jsonl`` in the work dir:
    iteration, epoch, batch index, sample indices, a digest of the input bytes, the
    mixing mask, the (logged) loss, the message-hub loss and the learning rates."""
    priority = 'LOW'

    def before_run(self, runner):
        self._mask = None
        model = unwrap(runner.model)
        backbone = getattr(model, 'backbone', None)
        if backbone is not None:
            def grab(module, args, kwargs):
                mask = kwargs.get('mask', args[1] if len(args) > 1 else None)
                self._mask = None if mask is None else mask.flatten().tolist()
            backbone.register_forward_pre_hook(grab, with_kwargs=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        inputs = data_batch['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        record = dict(
            iter=runner.iter + 1, epoch=runner.epoch, batch_idx=batch_idx,
            samples=[int(s.sample_idx) for s in data_batch['data_samples']],
            batch_size=int(inputs.shape[0]),
            digest=hashlib.sha256(inputs.contiguous().numpy().tobytes()).hexdigest(),
            mask=self._mask,
            loss=float(outputs['loss']),
            hub_loss=float(runner.message_hub.get_scalar('train/loss').current()),
            lr=sorted({g['lr'] for g in runner.optim_wrapper.param_groups}))
        _dump_line(osp.join(runner.work_dir, f'records_rank{get_rank()}.jsonl'), record)


@HOOKS.register_module()
class LocalLossHook(Hook):
    """Record this rank's own loss before RankMeanLogVarsHook averages it (list this hook
    before RankMeanLogVarsHook in ``custom_hooks``: equal priorities run in order)."""
    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        _dump_line(osp.join(runner.work_dir, f'local_loss_rank{get_rank()}.jsonl'),
                   dict(iter=runner.iter + 1, loss=float(outputs['loss'])))


@HOOKS.register_module()
class SigkillHook(Hook):
    """SIGKILL this process right after iteration ``at_iter`` (1-based) finished and all
    other hooks of that iteration ran."""
    priority = 'LOWEST'

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonLossHook(Hook):
    """From iteration ``at_iter`` (1-based) on, the model's loss is multiplied by
    ``value`` ('nan' or 'inf')."""
    priority = 'HIGHEST'

    def __init__(self, at_iter, value='nan'):
        self.at_iter = at_iter
        self.factor = float(value)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 != self.at_iter:
            return
        model = unwrap(runner.model)
        original = model.loss
        factor = self.factor

        def poisoned(*args, **kwargs):
            return {k: v * factor for k, v in original(*args, **kwargs).items()}

        model.loss = poisoned


@HOOKS.register_module()
class InfGradHook(Hook):
    """From iteration ``from_iter`` (1-based) on, the gradient of the patch embedding
    weight is +inf (the loss stays finite): every optimizer step overflows."""

    def __init__(self, from_iter):
        self.from_iter = from_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.from_iter:
            param = unwrap(runner.model).backbone.patch_embed.proj.weight
            param.register_hook(lambda g: torch.full_like(g, float('inf')))


@HOOKS.register_module()
class CPUGradScalerHook(Hook):
    """Give the (CPU, bfloat16) AmpOptimWrapper a real, enabled dynamic GradScaler so the
    loss-scale logic runs on CPU (compat installs a disabled one there)."""
    priority = 'VERY_HIGH'

    def __init__(self, init_scale=16.0):
        self.init_scale = init_scale

    def before_run(self, runner):
        runner.optim_wrapper.loss_scaler = torch.amp.GradScaler(
            'cpu', init_scale=self.init_scale, growth_interval=1000)


@HOOKS.register_module()
class CrashDuringSaveHook(Hook):
    """SIGKILL the process half-way through writing the checkpoint of iteration
    ``at_iter``: the first half of its bytes are on disk (fsync-ed), the rest never."""

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def before_run(self, runner):
        from mmengine.fileio.backends import LocalBackend
        original = LocalBackend.put
        marker = f'iter_{self.at_iter}.pth'

        def put(backend, obj, filepath):
            if marker in str(filepath):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            return original(backend, obj, filepath)

        LocalBackend.put = put


@HOOKS.register_module()
class DumpParamsHook(Hook):
    """Save this rank's model state before and after training."""

    def _dump(self, runner, stage):
        state = {k: v.detach().cpu().clone() for k, v in unwrap(runner.model).state_dict().items()}
        torch.save(dict(state=state, rank=get_rank(), world_size=get_world_size(),
                        iter=runner.iter),
                   osp.join(runner.work_dir, f'params_{stage}_rank{get_rank()}.pt'))

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def uint16_from_uint8(arr):
    return arr.astype(np.uint16) * 257

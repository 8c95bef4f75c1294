"""Run a real config for a few iterations and one validation pass on this CPU.

    python tools/misc/dry_run.py CONFIG [--data-root DIR] [--iters N] [--batch-size B]
        [--val-samples V] [--image-scale F] [--checkpoint CKPT] [--work-dir DIR]
        [--cfg-options k=v ...]

The config's own pipelines, dataset classes, samplers, model, optimizer constructor, param
schedulers, hooks and evaluator run through mmengine's ``Runner`` (mmpretrain, mmdet and mmseg
scopes alike).  Only what one CPU process needs is changed, and every change is printed
(``tools/misc/dry_run_config.py``).  Before the Runner is built, the data root is checked
against the layout the datasets expect (``tools/misc/data_layout.py``), and after the model
is built its sizes are checked (``tools/misc/config_consistency.py``); either stops the run
before training with a message naming the file or the two fields.

``--data-root DIR`` replaces the config's ``data_root`` (e.g. ``data/coco/`` -> ``DIR/``).
The report lists what was measured on this machine and nothing else: the loss of every
iteration, seconds per iteration, the process's peak resident memory, the parameter count and
the validation metrics.
"""
import argparse
import numbers
import os
import os.path as osp
import resource
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # sibling modules of this tool
try:
    import mmmixmae  # noqa: F401  (applies mmmixmae.compat)
except ImportError:  # a checkout that is not pip-installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mmmixmae  # noqa: F401

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from config_consistency import check_consistency  # noqa: E402
from data_layout import check_loaders  # noqa: E402
from dry_run_config import adapt_for_cpu  # noqa: E402


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.


class DryRunRecorder(Hook):
    """Records losses, iteration times and validation metrics (changes nothing)."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.losses: List[Dict[str, float]] = []
        self.seconds: List[float] = []
        self.metrics: Optional[Dict[str, float]] = None
        self.val_seconds: Optional[float] = None
        self._t = 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._t = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seconds.append(time.perf_counter() - self._t)
        self.losses.append({k: float(v.detach()) if hasattr(v, "detach") else float(v)
                            for k, v in (outputs or {}).items()})

    def before_val_epoch(self, runner):
        self._t = time.perf_counter()

    def after_val_epoch(self, runner, metrics=None):
        self.val_seconds = time.perf_counter() - self._t
        self.metrics = dict(metrics or {})


def format_report(rec: DryRunRecorder, params: int, trainable: int, rss: float,
                  rss_start: float) -> List[str]:
    lines = ['dry run report (measured in this process, on this machine):']
    for i, (loss, sec) in enumerate(zip(rec.losses, rec.seconds), 1):
        terms = ', '.join(f'{k}={v:.4f}' for k, v in loss.items())
        lines.append(f'  iter {i}: {sec:.2f} s  {terms}')
    if len(rec.seconds) > 1:
        later = rec.seconds[1:]
        lines.append(f'  s/iter: first {rec.seconds[0]:.2f} (includes one-time set-up), '
                     f'mean of the other {len(later)} {sum(later) / len(later):.2f}')
    elif rec.seconds:
        lines.append(f'  s/iter: {rec.seconds[0]:.2f} (one iteration, includes set-up)')
    lines.append(f'  peak memory: {rss:.0f} MiB resident (process peak; {rss_start:.0f} MiB '
                 'before the Runner was built)')
    lines.append(f'  parameters: {params:,} ({trainable:,} trainable)')
    if rec.metrics is None:
        lines.append('  validation: none (the config has no validation loop)')
    else:
        vals = ', '.join(f'{k}={float(v):.4f}' if isinstance(v, numbers.Real) else f'{k}={v}'
                         for k, v in rec.metrics.items()) or '{} (the evaluator returned none)'
        lines.append(f'  validation ({rec.val_seconds:.1f} s): {vals}')
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--data-root', help="replaces the config's data_root")
    p.add_argument('--iters', type=int, default=2, help='training iterations (2)')
    p.add_argument('--batch-size', type=int, default=2, help='training batch size (2)')
    p.add_argument('--val-samples', type=int, default=None,
                   help='validate on the first V samples only (default: all)')
    p.add_argument('--image-scale', type=float, default=None,
                   help='opt-in: multiply detection / segmentation resize and crop sizes by '
                   'this factor (e.g. 0.25); printed with the other changes')
    p.add_argument('--checkpoint', help='pretrained file for init_cfg=Pretrained (default: '
                   'random init)')
    p.add_argument('--work-dir', help='keep logs/checkpoints here (default: a temporary '
                   'folder, removed at the end)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='config overrides, applied before the dry-run changes')
    return p.parse_args(argv)


def dry_run(args) -> Dict:
    """Run; returns ``{'changes', 'data', 'losses', 'seconds', 'metrics', 'params',
    'peak_rss_mib'}``."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    changes = adapt_for_cpu(cfg, batch_size=args.batch_size, iters=args.iters,
                            data_root=args.data_root, checkpoint=args.checkpoint,
                            val_samples=args.val_samples, image_scale=args.image_scale)
    print(f'dry run of {args.config}: {len(changes)} changes for one CPU process')
    for line in changes:
        print(f'  {line}')
    data = check_loaders(cfg)
    for loader, summary in data.items():
        print(f'data {loader}: {summary}')
    tmp = None if args.work_dir else tempfile.mkdtemp(prefix='dry_run_')
    cfg.work_dir = args.work_dir or tmp
    cfg.launcher = 'none'
    rss_start = peak_rss_mib()
    try:
        runner = Runner.from_cfg(cfg)
        family = check_consistency(cfg, runner.model)
        print(f'sizes consistent ({family})')
        if len(runner.train_dataloader) < args.iters and 'max_epochs' in cfg.train_cfg:
            raise ValueError(f'the training set gives {len(runner.train_dataloader)} batches of '
                             f'{args.batch_size}, fewer than --iters {args.iters}')
        rec = DryRunRecorder()
        runner.register_hook(rec)
        runner.train()
        params = sum(p.numel() for p in runner.model.parameters())
        trainable = sum(p.numel() for p in runner.model.parameters() if p.requires_grad)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    rss = peak_rss_mib()
    for line in format_report(rec, params, trainable, rss, rss_start):
        print(line)
    return dict(changes=changes, data=data, losses=rec.losses, seconds=rec.seconds,
                metrics=rec.metrics, params=params, peak_rss_mib=rss)


def main(argv=None) -> int:
    dry_run(parse_args(argv))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Shared command-line code of ``tools/train.py`` and ``tools/test.py``.

Both tools follow the OpenMMLab layout: parse the arguments, check them (a
missing config or checkpoint, a config without ``model``, an ``--out`` that
is not a pickle: one line on stderr, exit status 2, no traceback), load the
config, apply the command-line overrides and hand the config to mmengine's
Runner (``cfg.runner_type`` picks a custom runner from the ``RUNNERS``
registry).  The config's ``default_scope`` (mmpretrain, mmdet or mmseg)
decides which registries are used; nothing here is scope specific.

Files are checked before anything is built: the model, datasets and Runner
come only after the arguments and the config have passed.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import re
from typing import Optional, Sequence

from .amp import cpu_amp_dtype
from .config import load_config as _load_config
from .dist_teardown import close_process_group
from .errors import UserError, fail

__all__ = [
    'CLIError', 'fail', 'train_parser', 'test_parser', 'load_config',
    'apply_train_args', 'apply_test_args', 'build_runner', 'train_main',
    'test_main'
]

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
_REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'pavi://', 'open-mmlab://',
                    'torchvision://', 'mmcls://', 'modelzoo://')


#: the user-error type (:class:`mmmixmae.utils.errors.UserError`) under its CLI name
CLIError = UserError


def _cfg_options_action():
    from mmengine.config import DictAction
    return DictAction


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=_cfg_options_action(),
        help='override config settings, "key=value" pairs, e.g. '
        'train_dataloader.batch_size=8 or '
        'model.backbone.out_indices="[2,3]"; a list is written "[a,b]" or '
        'a,b (no spaces); a key the config does not have is refused')
    parser.add_argument(
        '--allow-new-keys',
        action='store_true',
        help='accept --cfg-options keys that are not in the config (adds '
        'them)')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher (pytorch: torchrun / torch.distributed.run)')
    # torch.distributed.launch passes --local-rank (older: --local_rank)
    parser.add_argument(
        '--local_rank', '--local-rank', type=int, default=0,
        help=argparse.SUPPRESS)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='train.py', description='Train a model with mmengine\'s Runner')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CKPT',
        help='resume training from CKPT; without CKPT resume from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper; bfloat16 on CPU)')
    parser.add_argument(
        '--pretrained',
        metavar='CKPT',
        help='backbone checkpoint of a pretraining-to-transfer config (same '
        'as --cfg-options model.backbone.init_cfg.checkpoint=CKPT)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the total batch size relative to '
        'the config\'s auto_scale_lr.base_batch_size')
    _add_common(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='test.py', description='Test a checkpoint with mmengine\'s Runner')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where the evaluation logs go (default: the config\'s work_dir, '
        'else ./work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='also dump the raw predictions to this pickle file (.pkl or '
        '.pickle)')
    _add_common(parser)
    return parser


def check_config_path(path: str) -> None:
    if not osp.isfile(path):
        what = 'is a directory' if osp.isdir(path) else 'not found'
        raise UserError(f'config file {what}: {path}')


def load_config(path: str, cfg_options: Optional[dict] = None,
                allow_new_keys: bool = False, pretrained: Optional[str] = None):
    """Load ``path`` (:func:`mmmixmae.utils.config.load_config`: overrides checked and merged,
    ``--pretrained`` applied, ``model`` required)."""
    check_config_path(path)
    return _load_config(path, cfg_options, allow_new_keys=allow_new_keys,
                        pretrained=pretrained)


def _set_common(cfg, args) -> None:
    if args.launcher != 'none' and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _apply_amp(cfg) -> None:
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise UserError('--amp needs an optim_wrapper in the config')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise UserError(f'--amp works with OptimWrapper or AmpOptimWrapper, '
                       f'but the config uses optim_wrapper.type='
                       f'{wrapper_type}')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')
    if not _cuda_available():
        cpu_amp_dtype(optim_wrapper.get('dtype'), '--amp with optim_wrapper.dtype')
        optim_wrapper.dtype = 'bfloat16'


def apply_train_args(cfg, args) -> None:
    """Apply ``tools/train.py``'s flags to ``cfg`` in place."""
    _set_common(cfg, args)
    if args.amp:
        _apply_amp(cfg)
    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'base_batch_size' not in scale:
            raise UserError('--auto-scale-lr needs auto_scale_lr='
                           'dict(base_batch_size=...) in the config')
        scale.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        _check_checkpoint_path(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume


def _check_checkpoint_path(path: str) -> None:
    if path.startswith(_REMOTE_PREFIXES):
        return
    path = osp.expanduser(path)
    if osp.isdir(path):  # a sharded checkpoint: FSDP (rank<i>.pth) or DeepSpeed ZeRO files
        from mmmixmae.checkpoint.deepspeed_zero import holds_deepspeed_files
        if not (any(re.fullmatch(r'rank\d+\.pth', f) for f in os.listdir(path))
                or holds_deepspeed_files(path)):
            raise UserError(f'checkpoint folder {path} holds neither rank<i>.pth shards (FSDP) '
                            'nor deepspeed *mp_rank_00_model_states.pt files (DeepSpeed)')
        return
    if not osp.isfile(path):
        raise UserError(f'checkpoint file not found: {path}')


def apply_test_args(cfg, args) -> None:
    """Apply ``tools/test.py``'s flags to ``cfg`` in place."""
    _set_common(cfg, args)
    for key in ('test_dataloader', 'test_evaluator'):
        if cfg.get(key) is None:
            raise UserError(f'config {args.config} defines no "{key}"')
    cfg.load_from = args.checkpoint
    cfg.resume = False


def build_runner(cfg):
    """``Runner.from_cfg``, or the ``RUNNERS`` registry when the config names
    a ``runner_type``."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def _prepare(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]):
    args = parser.parse_args(argv)
    try:
        check_config_path(args.config)
        if getattr(args, 'checkpoint', None) is not None:
            _check_checkpoint_path(args.checkpoint)
        out = getattr(args, 'out', None)
        if out is not None and not out.endswith(('.pkl', '.pickle')):
            raise UserError(f'--out must end with .pkl or .pickle: {out}')
        import mmmixmae  # noqa: F401  (registers the modules, applies mmmixmae.compat)
        cfg = load_config(args.config, args.cfg_options,
                          getattr(args, 'allow_new_keys', False),
                          getattr(args, 'pretrained', None))
        from .data_check import check_required_data
        from .mmcv_ops_check import check_mmcv_cuda_ops
        try:
            check_required_data(cfg.get('required_data'), cfg)
            check_mmcv_cuda_ops(cfg.get('model'))
        except (RuntimeError, OSError) as err:
            raise UserError(str(err)) from None
    except UserError as err:
        fail(err, parser.prog)
    return args, cfg


def train_main(argv: Optional[Sequence[str]] = None):
    """Entry point of ``tools/train.py``; returns the trained model."""
    parser = train_parser()
    args, cfg = _prepare(parser, argv)
    try:
        apply_train_args(cfg, args)
    except UserError as err:
        fail(err, parser.prog)
    runner = build_runner(cfg)
    model = runner.train()
    close_process_group()
    return model


def test_main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point of ``tools/test.py``; returns the metrics."""
    parser = test_parser()
    args, cfg = _prepare(parser, argv)
    try:
        apply_test_args(cfg, args)
    except UserError as err:
        fail(err, parser.prog)
    runner = build_runner(cfg)
    if args.out is not None:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    close_process_group()
    return metrics

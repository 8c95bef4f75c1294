"""k-NN and linear-probe accuracy of frozen backbone features on a labelled image folder.

    python tools/analysis_tools/knn_linear_probe.py CONFIG CHECKPOINT DATA_DIR \
        [--k 20] [--temperature 0.07] [--C 1.0] [--val-fraction 0.3] [--size S] [--out R.json]
    python tools/analysis_tools/knn_linear_probe.py CONFIG --random-init DATA_DIR [...]

DATA_DIR holds one sub-folder per class (ImageNet layout), either directly (split into
train/val here, per class, with --seed) or under DATA_DIR/train and DATA_DIR/val.  CHECKPOINT
may be a pretraining or classification Runner checkpoint (its ``backbone.*`` weights are used),
an official MixMIM checkpoint or a bare backbone state dict; every backbone weight must be in
it.  ``--random-init`` (in place of CHECKPOINT) gives the baseline of the same backbone with its
own random initialisation (``init_weights``, seeded by ``--seed``), which is what the trained
figures must be read against on small folders.  See :mod:`mmmixmae.apis.feature_eval` for the exact protocol.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmixmae.apis.common import ToolError, run_tool  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='knn_linear_probe.py',
        description='Weighted k-NN and linear-probe accuracy of frozen backbone features.')
    parser.add_argument('config', help='config whose model has a MixMAESwin (or other) backbone')
    parser.add_argument('checkpoint', help='checkpoint with the backbone weights (omit with '
                        '--random-init)')
    parser.add_argument('data_dir', nargs='?', help='labelled folder: DATA_DIR/<class>/<image> or '
                        'DATA_DIR/{train,val}/<class>/<image>')
    parser.add_argument('--random-init', action='store_true',
                        help='no checkpoint: evaluate the randomly initialised backbone (the '
                        'baseline); the positional arguments are then CONFIG DATA_DIR')
    parser.add_argument('--k', type=int, default=20, help='neighbours of the k-NN vote (20)')
    parser.add_argument('--temperature', type=float, default=0.07,
                        help='k-NN vote weight exp(cosine / T) (0.07)')
    parser.add_argument('--C', type=float, default=1.0,
                        help='inverse L2 strength of the logistic regression (1.0)')
    parser.add_argument('--max-iter', type=int, default=1000, help='L-BFGS iterations (1000)')
    parser.add_argument('--val-fraction', type=float, default=0.3,
                        help='share of each class held out when there is no train/val split')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split and the probe')
    parser.add_argument('--size', type=int, default=None,
                        help='crop size (default: the backbone\'s img_size)')
    parser.add_argument('--crop-ratio', type=float, default=0.875,
                        help='crop / resized shorter side (0.875: 224 out of 256)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default=None, help='also write the results to this .json')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.random_init:
        if args.data_dir is not None:
            raise ToolError('--random-init takes no CHECKPOINT: give CONFIG --random-init '
                            f'DATA_DIR, got {args.checkpoint} and {args.data_dir}')
        args.checkpoint, args.data_dir = None, args.checkpoint
    elif args.data_dir is None:
        raise ToolError('give CONFIG CHECKPOINT DATA_DIR, or CONFIG --random-init DATA_DIR')
    return args


def check_args(args):
    from mmmixmae.apis.common import check_file
    check_file(args.config, 'config file')
    if args.checkpoint is not None:
        check_file(args.checkpoint, 'checkpoint file')
    if not osp.isdir(args.data_dir):
        raise ToolError(f'data folder not found: {args.data_dir}')
    if args.k < 1:
        raise ToolError(f'--k must be at least 1, got {args.k}')
    if args.temperature <= 0:
        raise ToolError(f'--temperature must be positive, got {args.temperature}')
    if args.C <= 0:
        raise ToolError(f'--C must be positive, got {args.C}')
    if not 0.0 < args.crop_ratio <= 1.0:
        raise ToolError(f'--crop-ratio must lie in (0, 1], got {args.crop_ratio}')
    if args.size is not None and args.size < 32:
        raise ToolError(f'--size must be at least 32, got {args.size}')
    if args.batch_size < 1:
        raise ToolError(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.out is not None and not args.out.endswith('.json'):
        raise ToolError(f'--out must end with .json: {args.out}')


def build_backbone(cfg, config_path):
    """The config's backbone, returning the pooled last stage after its final norm."""
    from mmmixmae.apis.common import import_scope
    from mmengine.registry import MODELS
    bb = cfg.model.get('backbone')
    if not isinstance(bb, dict):
        raise ToolError(f'config {config_path} has no model.backbone')
    bb = dict(bb)
    bb.pop('init_cfg', None)  # weights come from CHECKPOINT, never from the config's pretrained
    if bb.get('type') in ('MixMAESwin', 'mmpretrain.MixMAESwin'):
        depths = bb.get('arch', 'base')
        n = len(depths['depths']) if isinstance(depths, dict) else 4
        bb.update(out_indices=(n - 1, ), out_type='avg_featmap', frozen_stages=-1,
                  drop_path_rate=0.0)
    import_scope(cfg)
    try:
        return MODELS.build(bb).eval()
    except Exception as err:
        raise ToolError(f'cannot build the backbone of {config_path}: {type(err).__name__}: '
                        f'{err}') from None


def _quiet_init_weights(module) -> None:
    """``module.init_weights()`` without mmengine's one-log-line-per-tensor report."""
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)


def run(args):
    from mmmixmae.apis.common import load_backbone_weights, load_tool_config, normalization_of
    from mmmixmae.apis.feature_eval import (evaluate_features, extract_features,
                                            scan_labelled_folder)
    cfg = load_tool_config(args.config, args.cfg_options)
    classes, train, val = scan_labelled_folder(args.data_dir, args.val_fraction, args.seed)
    if args.k > len(train):
        raise ToolError(f'--k {args.k} is larger than the {len(train)} training images')
    if args.checkpoint is None:
        import torch
        torch.manual_seed(args.seed)
        backbone = build_backbone(cfg, args.config)
        _quiet_init_weights(backbone)
        loaded, ignored = [], []
    else:
        backbone = build_backbone(cfg, args.config)
        loaded, ignored = load_backbone_weights(backbone, args.checkpoint)
    size = args.size
    if size is None:
        img_size = getattr(backbone, 'img_size', 224)
        size = img_size[0] if isinstance(img_size, (tuple, list)) else int(img_size)
    mean, std = normalization_of(cfg)
    t0 = time.time()
    tr_f = extract_features(backbone, [p for p, _ in train], size, mean, std, args.batch_size,
                            args.crop_ratio, args.device)
    va_f = extract_features(backbone, [p for p, _ in val], size, mean, std, args.batch_size,
                            args.crop_ratio, args.device)
    res = evaluate_features(tr_f, [lbl for _, lbl in train], va_f, [lbl for _, lbl in val],
                            len(classes), args.k, args.temperature, args.C, args.max_iter,
                            args.seed)
    res.update(classes=classes, feature_dim=int(tr_f.shape[1]), size=size, k=args.k,
               temperature=args.temperature, C=args.C, loaded_keys=len(loaded),
               ignored_keys=len(ignored), seconds=round(time.time() - t0, 2))
    return res


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    res = run(args)
    print(f'{res["num_classes"]} classes, {res["num_train"]} train / {res["num_val"]} val images, '
          f'{res["feature_dim"]}-d features at {res["size"]} px '
          + ('(random initialisation, no checkpoint)' if args.checkpoint is None else
             f'({res["loaded_keys"]} backbone tensors loaded, {res["ignored_keys"]} other keys '
             'ignored)'))
    print(f'k-NN (k={res["k"]}, T={res["temperature"]}) top-1: {100 * res["knn_top1"]:.2f}%')
    print(f'linear probe (C={res["C"]}) top-1:     {100 * res["linear_top1"]:.2f}%')
    print(f'chance: {100 * res["chance"]:.2f}%   majority class: {100 * res["majority"]:.2f}%')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    run_tool(main, prog='knn_linear_probe.py')()

"""Picture what a MixMAE checkpoint reconstructs from two mixed images.

    python tools/visualization/visualize_reconstruction.py CONFIG CHECKPOINT IMG1 IMG2 \
        --out FILE.png [--seed 0] [--mask-ratio R] [--stats {visible,target}] [--size S]

One row per image: the original (resized to the model's input size and centre-cropped), the
mixing mask on the 32-pixel cell grid, the mixed input the encoder sees, the reconstruction
(norm-pix predictions turned back into pixels, see ``--stats``) and the reconstruction with the
visible cells pasted back.  The heading gives the model's loss on the pair next to the loss of
predicting zeros (about 1.0).

``--stats visible`` (default) un-normalizes each hidden cell with statistics estimated from the
visible cells of the same image (inverse-squared-distance weighted mean of their per-cell mean
and standard deviation) and each visible cell with its own statistics; ``--stats target`` uses
every cell's true statistics, as the official MAE-style visualizations do.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmixmae.apis.common import ToolError, run_tool  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='visualize_reconstruction.py',
        description='Mix two images, reconstruct both with a MixMAE checkpoint, save a grid.')
    parser.add_argument('config', help='MixMAE pretraining config')
    parser.add_argument('checkpoint', help='checkpoint of that config (Runner .pth)')
    parser.add_argument('img1', help='first image')
    parser.add_argument('img2', help='second image')
    parser.add_argument('--out', required=True, help='output picture (.png or .jpg)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the mixing mask')
    parser.add_argument('--mask-ratio', type=float, default=None,
                        help='share of cells taken from the other image (default: the model\'s)')
    parser.add_argument('--stats', choices=('visible', 'target'), default='visible',
                        help='per-cell statistics used to turn norm-pix predictions into pixels')
    parser.add_argument('--size', type=int, default=None,
                        help='input size (multiple of 32; default: the backbone\'s img_size)')
    parser.add_argument('--scale', type=int, default=None,
                        help='integer upscaling of the panels (default: panels >= 160 px)')
    parser.add_argument('--device', default='cpu', help='torch device (cpu, cuda, cuda:1 ...)')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def check_args(args):
    """Cheap checks before anything is built."""
    from mmmixmae.apis.common import check_file
    check_file(args.config, 'config file')
    check_file(args.checkpoint, 'checkpoint file')
    check_file(args.img1, 'image file')
    check_file(args.img2, 'image file')
    if not args.out.lower().endswith(('.png', '.jpg', '.jpeg')):
        raise ToolError(f'--out must end with .png or .jpg: {args.out}')
    out_dir = osp.dirname(osp.abspath(args.out))
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ToolError(f'--out folder {out_dir} is a file')
    if args.mask_ratio is not None and not 0.0 <= args.mask_ratio <= 1.0:
        raise ToolError(f'--mask-ratio must lie in [0, 1], got {args.mask_ratio}')
    if args.size is not None and (args.size < 32 or args.size % 32):
        raise ToolError(f'--size must be a positive multiple of 32, got {args.size}')
    if args.scale is not None and args.scale < 1:
        raise ToolError(f'--scale must be at least 1, got {args.scale}')


def visualize(config, checkpoint, img1, img2, out, seed=0, mask_ratio=None, stats='visible',
              size=None, scale=None, device='cpu', cfg_options=None, model=None):
    """Build (or reuse ``model``), reconstruct, save ``out``; returns ``(result, grid, boxes)``."""
    import torch
    from PIL import Image

    from mmmixmae.apis.common import (build_model, load_model_weights, load_tool_config,
                                      normalization_of, read_rgb, resize_center_crop)
    from mmmixmae.apis.reconstruction import compose_grid, reconstruct_pair
    cfg = load_tool_config(config, cfg_options)
    if cfg.model.get('neck') is None or cfg.model.get('head') is None:
        raise ToolError(f'config {config} has no decoder (model.neck) or loss head '
                        '(model.head): a MixMAE pretraining config is needed')
    # decode both images before building the model: a bad image fails fast
    raw = [read_rgb(img1), read_rgb(img2)]
    if model is None:
        model = build_model(cfg, config)
        load_model_weights(model, checkpoint, require=('backbone.', 'neck.'))
    try:
        model = model.to(device).eval()
    except (RuntimeError, AssertionError) as err:
        raise ToolError(f'cannot use device {device!r}: {err}') from None
    if size is None:
        hw = tuple(model.backbone.img_size)
    else:
        hw = (size, size)
    images = [resize_center_crop(r, hw) for r in raw]
    mean, std = normalization_of(cfg)
    names = (osp.basename(img1), osp.basename(img2))
    with torch.no_grad():
        result = reconstruct_pair(model, images, mean, std, seed=seed, mask_ratio=mask_ratio,
                                  stats=stats, names=names)
    grid, boxes = compose_grid(result, scale=scale, title=osp.basename(checkpoint))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    Image.fromarray(grid).save(out)
    return result, grid, boxes


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    result, grid, _ = visualize(args.config, args.checkpoint, args.img1, args.img2, args.out,
                                seed=args.seed, mask_ratio=args.mask_ratio, stats=args.stats,
                                size=args.size, scale=args.scale, device=args.device,
                                cfg_options=args.cfg_options)
    print(f'reconstruction loss {result.loss:.4f} (predicting zeros: {result.zero_loss:.4f}); '
          f'{int(result.mask.sum())}/{result.mask.size} cells mixed; '
          f'saved {grid.shape[1]}x{grid.shape[0]} picture to {args.out}')
    return result


if __name__ == '__main__':
    run_tool(main, prog='visualize_reconstruction.py')()

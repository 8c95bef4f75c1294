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
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmixmae.apis.common import ToolError, run_tool  # noqa: E402
from mmmixmae.apis.visualize import visualize_reconstruction as visualize  # noqa: E402


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

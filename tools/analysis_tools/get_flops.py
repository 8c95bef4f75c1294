"""Parameters and FLOPs of a config's model.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] [--cfg-options k=v ...]

FLOPs follow fvcore / mmengine.analysis: one multiply-add counts as one FLOP (so these are
MACs, the convention of the Swin and MixMAE papers); convolutions, linear layers, matrix
products (including fused ``scaled_dot_product_attention``) and normalization layers are
counted, element-wise operations (additions, GELU, softmax) are not.

What is counted, per image:

* classification configs: backbone + neck + head, ``model(x, mode='tensor')``;
* MixMAE pretraining configs: one training forward, the encoder on a mixed pair plus the dual
  decoder (which decodes ``2B`` sequences), divided by the 2 images; the loss is not included;
* mmseg / mmdet configs: ``mode='tensor'`` (for detectors the RoI heads run on the proposals of
  the random input, so their share depends on it).

Default shape: classifiers and pretraining, the backbone's ``img_size`` (224 when it has none);
segmentors, the config's ``crop_size`` (512 x 512 without one); detectors, 800 x 1280 (H x W,
the "1280 x 800" of the Swin and mmdet tables).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmixmae.apis.common import ToolError, run_tool  # noqa: E402

#: default input (H, W) of detectors: the 1280 x 800 convention of the Swin / mmdet tables
DETECTOR_SHAPE = (800, 1280)
#: default input of segmentors without a ``crop_size`` in the config
SEGMENTOR_SHAPE = (512, 512)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='get_flops.py',
                                     description='Count parameters and FLOPs of a config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None, metavar='S',
                        help='input size: H W, or one S for S x S (default: backbone img_size)')
    parser.add_argument('--show-skipped', action='store_true',
                        help='list the operators that are not counted')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def _shape(args, cfg, kind='classifier'):
    if args.shape is None:
        if kind == 'detector':
            shape = DETECTOR_SHAPE
        elif kind == 'segmentor':
            crop = cfg.get('crop_size', SEGMENTOR_SHAPE)
            shape = (crop, crop) if isinstance(crop, int) else tuple(crop)
        else:
            size = cfg.model.get('backbone', {}).get('img_size', 224)
            shape = (size, size) if isinstance(size, int) else tuple(size)
    elif len(args.shape) == 1:
        shape = (args.shape[0], args.shape[0])
    elif len(args.shape) == 2:
        shape = tuple(args.shape)
    else:
        raise ToolError(f'--shape takes H W or a single S, got {args.shape}')
    if min(shape) < 32:
        raise ToolError(f'--shape must be at least 32 x 32, got {shape[0]} x {shape[1]}')
    return shape


def get_flops(config, shape=None, cfg_options=None, show_skipped=False):
    """Returns the result dict of :func:`mmmixmae.apis.complexity.model_complexity`."""
    from mmmixmae.apis.common import build_model, load_tool_config
    from mmmixmae.apis.complexity import model_complexity
    from mmmixmae.apis.complexity import model_kind
    cfg = load_tool_config(config, cfg_options)
    args = argparse.Namespace(shape=shape)
    _shape(args, cfg)  # a malformed --shape fails before the model is built
    model = build_model(cfg, config)
    hw = _shape(args, cfg, model_kind(model))
    try:
        return model_complexity(model, hw)
    except ValueError as err:  # e.g. a size the mixing grid cannot take
        raise ToolError(f'{config} at {hw[0]}x{hw[1]}: {err}') from None


def main(argv=None):
    args = parse_args(argv)
    from mmmixmae.apis.common import check_file
    from mmmixmae.apis.complexity import format_count
    check_file(args.config, 'config file')
    res = get_flops(args.config, args.shape, args.cfg_options)
    h, w = res['shape']
    what = {
        'mixmae-pretrain': 'pretraining forward: mixed encoder + dual decoder, per image',
        'classifier': 'backbone + neck + head',
        'segmentor': 'backbone + decode heads (tensor mode)',
        'detector': 'backbone + neck + RPN + RoI heads (tensor mode)',
    }[res['kind']]
    line = '=' * 64
    print(line)
    print(f'Config:      {args.config}')
    print(f'Input shape: 3 x {h} x {w}')
    print(f'Counted:     {what}')
    print(f'Params:      {format_count(res["params"])} ({res["params"]:,}; trainable '
          f'{res["trainable_params"]:,})')
    print(f'FLOPs:       {format_count(res["flops"])} ({int(res["flops"]):,}; '
          'one multiply-add = one FLOP)')
    if args.show_skipped:
        skipped = ', '.join(f'{k} x{v}' for k, v in sorted(res['skipped_ops'].items()))
        print(f'Not counted: {skipped or "nothing"}')
    print(line)
    return res


if __name__ == '__main__':
    run_tool(main, prog='get_flops.py')()

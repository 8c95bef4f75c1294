"""The reconstruction picture: config + checkpoint + two images -> one PNG/JPG grid.

Used by ``tools/visualization/visualize_reconstruction.py`` and ``tools/demo/run_demo.py``;
the panels themselves come from :func:`mmmixmae.apis.reconstruction.reconstruct_pair`.
"""
import os
import os.path as osp
from typing import Optional

from .common import (ToolError, build_model, load_model_weights, load_tool_config,
                     normalization_of, read_rgb, resize_center_crop)
from .reconstruction import compose_grid, reconstruct_pair

__all__ = ['visualize_reconstruction']


def visualize_reconstruction(config: str, checkpoint: str, img1: str, img2: str, out: str,
                             seed: int = 0, mask_ratio: Optional[float] = None,
                             stats: str = 'visible', size: Optional[int] = None,
                             scale: Optional[int] = None, device: str = 'cpu',
                             cfg_options: Optional[dict] = None, model=None):
    """Build (or reuse ``model``), reconstruct, save ``out``; returns ``(result, grid, boxes)``."""
    import torch
    from PIL import Image
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

"""What a MixMAE model reconstructs from a mixed pair of images, as pixel pictures.

The pair ``(a, b)`` is mixed with one mask on the 32-pixel cell grid: mixed input ``a`` holds
``a`` where ``mask == 0`` ("visible" cells of ``a``) and ``b`` where ``mask == 1``; mixed input
``b`` is the complement.  The dual decoder predicts every cell of every image once, at the mixed
input where that cell is hidden; :func:`mmmixmae.models.utils.mixing.unmix_predictions` puts the
two halves together, exactly as the loss does.

The predictions live in the normalized-pixel (norm-pix) space of the loss: each 32x32x3 cell is
``(x - mu) / sqrt(var + eps)`` with the cell's own mean ``mu`` and unbiased variance ``var``
over its 3072 values (in the data preprocessor's normalized units).  Turning a prediction back
into pixels needs a ``(mu, sigma)`` per cell:

* ``stats='visible'`` (default): only what the model's own mixed input shows.  A cell that is
  visible in the image's mixed input uses its own statistics (they are known exactly).  A hidden
  cell gets the inverse-squared-distance weighted average of the ``mu`` and of the ``sigma`` of
  the visible cells of the same image (distance between cell centres on the grid).  Nothing of
  the hidden pixels enters the picture.
* ``stats='target'``: every cell uses its true statistics (the original image's), as the
  official MAE/MixMIM visualizations do; this shows the predicted structure with the true
  brightness and contrast of each cell, and peeks at two numbers per hidden cell.

The "pasted" picture replaces the visible cells of the reconstruction by the original pixels.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .common import ToolError

__all__ = ['PairReconstruction', 'reconstruct_pair', 'cell_statistics', 'visible_statistics',
           'compose_grid', 'PANEL_TITLES']

PANEL_TITLES = ('original', 'mixing mask', 'mixed input', 'reconstruction',
                'reconstruction + visible')
PANEL_KEYS = ('original', 'mask', 'mixed', 'reconstruction', 'pasted')


@dataclass
class PairReconstruction:
    """Panels (``uint8 [H, W, 3]`` RGB) and numbers of one reconstructed pair.

    ``panels[i][key]`` for image ``i`` in (0, 1) and ``key`` in :data:`PANEL_KEYS`;
    ``mask`` is the ``[h, w]`` 0/1 cell grid (1 = hidden in image 0's mixed input, filled by
    image 1); ``loss`` is the model's loss on the pair and ``zero_loss`` the loss of predicting 0.
    """
    panels: List[Dict[str, np.ndarray]]
    mask: np.ndarray
    cell: int
    loss: float
    zero_loss: float
    stats: str
    names: Tuple[str, str] = ('image 1', 'image 2')
    extra: dict = field(default_factory=dict)


def cell_statistics(x: torch.Tensor, cell: int, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-cell mean and ``sqrt(var + eps)`` (unbiased var) as the norm-pix target uses them:
    ``[B, L]`` each, ``L`` cells in row-major order."""
    from mmmixmae.models.heads.mixmae_head import patchify
    p = patchify(x, cell)
    return p.mean(dim=-1), (p.var(dim=-1) + eps).sqrt()


def visible_statistics(mu: torch.Tensor, sigma: torch.Tensor, visible: torch.Tensor,
                       grid: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Statistics from visible cells only.

    Args:
        mu, sigma: ``[L]`` true per-cell statistics of one image.
        visible: ``[L]`` bool, the cells its mixed input shows.
        grid: ``(h, w)`` with ``h * w == L``.

    Returns:
        ``(mu', sigma')``: equal to ``mu, sigma`` at visible cells; at hidden cells the
        inverse-squared-distance weighted mean over the visible cells.
    """
    if not bool(visible.any()):
        raise ToolError('no cell of the image is visible in its mixed input (mask ratio 1): '
                        'there are no visible statistics, use --stats target')
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1).float()
    d2 = ((pos[:, None, :] - pos[None, :, :])**2).sum(-1)  # [L, L]
    weights = torch.where(visible[None, :], 1.0 / d2.clamp(min=1.0), torch.zeros(()))
    weights = weights / weights.sum(dim=1, keepdim=True)
    est_mu = weights @ mu
    est_sigma = weights @ sigma
    return torch.where(visible, mu, est_mu), torch.where(visible, sigma, est_sigma)


def _to_uint8(x_norm: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` normalized -> ``uint8 [H, W, 3]``."""
    m = torch.as_tensor(mean, dtype=x_norm.dtype).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=x_norm.dtype).view(3, 1, 1)
    px = (x_norm * s + m).clamp(0, 255).round().to(torch.uint8)
    return px.permute(1, 2, 0).contiguous().numpy()


def _cells_to_pixels(cells: np.ndarray, cell: int) -> np.ndarray:
    """``[h, w]`` -> ``[h*cell, w*cell]`` (nearest)."""
    return np.kron(cells, np.ones((cell, cell), dtype=cells.dtype))


def _mask_panel(mask: np.ndarray, cell: int) -> np.ndarray:
    """Visible cells light, hidden cells dark, with a thin grid."""
    pix = _cells_to_pixels(mask.astype(np.uint8), cell)
    img = np.where(pix[..., None] == 1, np.array([40, 40, 40], np.uint8),
                   np.array([235, 235, 235], np.uint8)).astype(np.uint8)
    img[::cell, :, :] = 128
    img[:, ::cell, :] = 128
    img[-1, :, :] = 128
    img[:, -1, :] = 128
    return img


@torch.no_grad()
def reconstruct_pair(model,
                     images: Sequence[np.ndarray],
                     mean: np.ndarray,
                     std: np.ndarray,
                     mask: Optional[torch.Tensor] = None,
                     seed: int = 0,
                     mask_ratio: Optional[float] = None,
                     stats: str = 'visible',
                     names: Tuple[str, str] = ('image 1', 'image 2')) -> PairReconstruction:
    """Mix two ``uint8 [H, W, 3]`` RGB images, run the model, return the panels.

    Args:
        model: a built ``MixMAE`` (backbone, neck, head) in eval mode.
        images: two arrays of the same size, a multiple of 32 that the backbone accepts.
        mean, std: RGB normalization of the model's data preprocessor.
        mask: ``[1, 1, H/32, W/32]`` 0/1; drawn from ``seed`` and ``mask_ratio`` (default the
            model's) when None.
        stats: ``'visible'`` or ``'target'`` (see the module docstring).
    """
    from mmmixmae.models.heads.mixmae_head import unpatchify
    from mmmixmae.models.utils.mixing import random_mixing_mask, unmix_predictions
    if stats not in ('visible', 'target'):
        raise ToolError(f'stats must be "visible" or "target", got {stats!r}')
    if len(images) != 2:
        raise ToolError(f'need exactly two images, got {len(images)}')
    if images[0].shape != images[1].shape or images[0].ndim != 3 or images[0].shape[2] != 3:
        raise ToolError(f'both images must be [H, W, 3] of one size, got {images[0].shape} and '
                        f'{images[1].shape}')
    for part in ('backbone', 'neck', 'head'):
        if getattr(model, part, None) is None:
            raise ToolError(f'the model has no {part}: a MixMAE pretraining config is needed')
    cell = model.backbone.encoder_stride
    h, w = images[0].shape[:2]
    grid = (h // cell, w // cell)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    x = (x - torch.as_tensor(mean).view(1, 3, 1, 1)) / torch.as_tensor(std).view(1, 3, 1, 1)
    try:
        model.backbone.check_pretrain_input(x, mask)
    except ValueError as err:
        raise ToolError(str(err)) from None
    if not model.dual:
        raise ToolError('the reconstruction picture needs a mixing encoder (fill_mode="mix"), '
                        f'the model has fill_mode={model.backbone.fill_mode!r}')
    if mask is None:
        gen = torch.Generator().manual_seed(seed)
        if mask_ratio is None:  # the model's own sampling
            mask = model.sample_mask(x, generator=gen).cpu()
        elif not 0.0 <= mask_ratio <= 1.0:
            raise ToolError(f'mask ratio must lie in [0, 1], got {mask_ratio}')
        else:  # a fixed ratio other than the model's
            mask = random_mixing_mask(grid, mask_ratio, 0.0, generator=gen)
    mask = mask.float()
    device = next(model.parameters()).device
    pred = model.forward_pretrain(x.to(device), mask.to(device)).float().cpu()
    b, length = 2, grid[0] * grid[1]
    m = mask.reshape(1, length, 1)
    rec = unmix_predictions(pred[:b], pred[b:], m)  # [2, L, P] norm-pix
    loss = float(model.head.loss(pred, x, mask, dual=True))
    target = model.head.construct_target(x)
    zero_loss = float((target**2).mean())

    eps = model.head.eps
    mu, sigma = cell_statistics(x, cell, eps)  # [2, L]
    visible = (mask.reshape(length) == 0)  # cells both images show in their own mixed input
    if model.head.norm_pix:
        if stats == 'visible':
            pairs = [visible_statistics(mu[i], sigma[i], visible, grid) for i in range(b)]
            mu_used = torch.stack([p[0] for p in pairs])
            sigma_used = torch.stack([p[1] for p in pairs])
        else:
            mu_used, sigma_used = mu, sigma
        rec = rec * sigma_used[..., None] + mu_used[..., None]
    rec_img = unpatchify(rec, cell, grid)  # [2, 3, H, W] normalized units

    mask_np = mask.reshape(grid).numpy().astype(np.uint8)
    vis_pix = _cells_to_pixels(1 - mask_np, cell).astype(bool)  # [H, W]
    mask_img = _mask_panel(mask_np, cell)
    panels = []
    for i in range(b):
        orig = np.ascontiguousarray(images[i]).astype(np.uint8)
        partner = images[1 - i].astype(np.uint8)
        mixed = np.where(vis_pix[..., None], orig, partner)
        rec_u8 = _to_uint8(rec_img[i], mean, std)
        pasted = np.where(vis_pix[..., None], orig, rec_u8)
        panels.append(dict(original=orig, mask=mask_img.copy(), mixed=mixed,
                           reconstruction=rec_u8, pasted=pasted))
    return PairReconstruction(panels=panels, mask=mask_np, cell=cell, loss=loss,
                              zero_loss=zero_loss, stats=stats, names=tuple(names))


def compose_grid(result: PairReconstruction, scale: Optional[int] = None,
                 title: Optional[str] = None) -> Tuple[np.ndarray, Dict[Tuple[int, str], tuple]]:
    """Lay the panels out (one row per image, one column per :data:`PANEL_KEYS`), upscaled by
    the integer ``scale`` (nearest; default: panels at least 160 px), with labels.

    Returns:
        ``(uint8 [H, W, 3] picture, {(row, key): (x0, y0, x1, y1)})`` panel boxes in pixels.
    """
    from PIL import Image, ImageDraw, ImageFont
    ph, pw = result.panels[0]['original'].shape[:2]
    if scale is None:
        scale = max(1, -(-160 // min(ph, pw)))
    if scale < 1:
        raise ToolError(f'scale must be a positive integer, got {scale}')
    sh, sw = ph * scale, pw * scale
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    gap, top, left = 8, 28, 130
    head = 26 if title is None else 48
    width = left + len(PANEL_KEYS) * (sw + gap) + gap
    height = head + top + 2 * (sh + gap) + 24
    canvas = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    heading = (f'MixMAE reconstruction  |  loss {result.loss:.3f} (predicting zeros: '
               f'{result.zero_loss:.3f})  |  mixed cells {int(result.mask.sum())}/'
               f'{result.mask.size}  |  statistics: {result.stats}')
    y = 6
    if title is not None:
        draw.text((gap, y), title, fill=(0, 0, 0), font=font)
        y += 22
    draw.text((gap, y), heading, fill=(0, 0, 0), font=small)
    boxes = {}
    for c, name in enumerate(PANEL_TITLES):
        x0 = left + c * (sw + gap)
        draw.text((x0, head + 6), name, fill=(0, 0, 0), font=font)
    for r in range(2):
        y0 = head + top + r * (sh + gap)
        label = str(result.names[r])
        label = label if len(label) <= 16 else label[:15] + '…'
        draw.text((gap, y0 + sh // 2 - 8), label, fill=(0, 0, 0), font=font)
        for c, key in enumerate(PANEL_KEYS):
            x0 = left + c * (sw + gap)
            arr = result.panels[r][key]
            big = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
            canvas.paste(Image.fromarray(big), (x0, y0))
            boxes[(r, key)] = (x0, y0, x0 + sw, y0 + sh)
    legend = ('mask: light = visible in the image\'s own mixed input, dark = filled by the '
              'other image and reconstructed')
    draw.text((gap, height - 20), legend, fill=(60, 60, 60), font=small)
    return np.asarray(canvas).copy(), boxes

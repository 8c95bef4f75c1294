"""Reconstruction target and loss of MixMAE."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.mixing import unmix_predictions


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, (H/p)*(W/p), p*p*C]``, each patch in (row, col, channel) order."""
    b, c, h, w = imgs.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f'image {h}x{w} is not a multiple of the patch size {p}')
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum('nchpwq->nhwpqc', x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, patch_size: int, hw, channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, h*w, p*p*C]`` -> ``[B, C, h*p, w*p]``."""
    b = x.shape[0]
    h, w = hw
    p = patch_size
    x = x.reshape(b, h, w, p, p, channels)
    return torch.einsum('nhwpqc->nchpwq', x).reshape(b, channels, h * p, w * p)


@MODELS.register_module()
class MixMAEPretrainHead(BaseModule):
    """Mean squared error of the unmixed reconstruction against (normalized) pixels.

    Args:
        patch_size: pixels per latent token (32).
        norm_pix: normalize each target patch by its own mean and unbiased variance.
        eps: added to the variance.
    """

    def __init__(self, patch_size: int = 32, norm_pix: bool = True, eps: float = 1e-6,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.norm_pix = norm_pix
        self.eps = eps

    def construct_target(self, imgs: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, L, p*p*3]``."""
        target = patchify(imgs, self.patch_size)
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + self.eps)**.5
        return target

    def loss(self, pred: torch.Tensor, imgs: torch.Tensor, mask: torch.Tensor,
             dual: bool = True) -> torch.Tensor:
        """
        Args:
            pred: ``[2B, L, P]`` (dual) or ``[B, L, P]``.
            imgs: ``[B, 3, H, W]`` the unmixed inputs.
            mask: ``[1, 1, h, w]`` mixing mask.
            dual: with ``dual`` every patch of every image is scored once, at the branch that
                saw a mask token there; otherwise only the masked places of the own image.
        """
        target = self.construct_target(imgs)
        b, length, _ = target.shape
        m = mask.reshape(1, length, 1).to(pred.dtype)
        pred = pred.float()
        if dual:
            rec = unmix_predictions(pred[:b], pred[b:], m.float())
            return ((rec - target)**2).mean()
        per_patch = ((pred - target)**2).mean(dim=-1, keepdim=True)
        denom = m.float().sum() * b
        if denom == 0:
            raise ValueError('no masked cell to reconstruct (mask ratio 0 without mixing)')
        return (per_patch * m.float()).sum() / denom

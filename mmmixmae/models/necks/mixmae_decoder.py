"""The light ViT decoder of MixMAE with dual (two-branch) reconstruction."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.attention import TransformerBlock
from ..utils.compile import check_compile_cfg, compiled
from ..utils.pos_embed import build_2d_sincos_pos_embed, resize_pos_embed


def _run_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return block(x)


@MODELS.register_module()
class MixMAEDecoder(BaseModule):
    """``Linear(C -> D)`` -> mask tokens -> fixed sin-cos position -> ViT blocks -> LayerNorm
    -> ``Linear(D -> stride^2 * 3)``.

    With ``dual=True`` the latent ``z`` of each mixed sample is decoded twice, stacked along
    the batch (``2B`` sequences): ``x1 = z*(1-m) + token*m`` predicts the sample's own image
    at the places its partner filled, ``x2 = z*m + token*(1-m)`` predicts the partner's
    image at the other places.

    Args:
        in_channels: encoder output channels.
        embed_dims, depth, num_heads, mlp_ratio: decoder size (512, 8, 16, 4 officially).
        img_size: pretraining image size; sets the decoder position grid (``img/stride``).
        encoder_stride: pixels per latent token (32).
        compile: ``torch.compile`` each block (``models/utils/compile.py``; same shapes every
            step, so the whole block compiles).
    """

    def __init__(self,
                 in_channels: int = 1024,
                 embed_dims: int = 512,
                 depth: int = 8,
                 num_heads: int = 16,
                 mlp_ratio: float = 4.,
                 img_size: Union[int, Sequence[int]] = 224,
                 encoder_stride: int = 32,
                 in_chans: int = 3,
                 use_fused_attn: bool = True,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.grid = (img_size[0] // encoder_stride, img_size[1] // encoder_stride)
        self.encoder_stride = encoder_stride
        self.decoder_embed = nn.Linear(in_channels, embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.decoder_pos_embed = nn.Parameter(
            build_2d_sincos_pos_embed(embed_dims, self.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            TransformerBlock(embed_dims, num_heads, mlp_ratio, qkv_bias=True,
                             use_fused=use_fused_attn) for _ in range(depth)
        ])
        self.compile_cfg = check_compile_cfg(compile)
        self.decoder_norm = nn.LayerNorm(embed_dims)
        self.decoder_pred = nn.Linear(embed_dims, encoder_stride**2 * in_chans)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.mask_token, std=.02)

    def init_weights(self):
        # initialized at construction with the official scheme
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            super().init_weights()

    def forward(self, latent: torch.Tensor, mask: torch.Tensor, dual: bool = True) -> torch.Tensor:
        """
        Args:
            latent: ``[B, L, C]`` final-stage tokens.
            mask: ``[1, 1, h, w]`` (``h*w == L``) mixing mask, 1 = taken from the partner.
            dual: decode both branches (``[2B, L, P]``) or only the own-image branch
                (``[B, L, P]``, for the fill-mode ablations).
        """
        x = self.decoder_embed(latent)
        b, length, _ = x.shape
        hw = tuple(mask.shape[-2:])
        m = mask.reshape(1, length, 1).to(x.dtype)
        token = self.mask_token.to(x.dtype)
        x1 = x * (1. - m) + token * m
        x = torch.cat([x1, x * m + token * (1. - m)], dim=0) if dual else x1
        x = x + resize_pos_embed(self.decoder_pos_embed, self.grid, hw).to(x.dtype)
        run = compiled(_run_block, self.compile_cfg)
        for block in self.decoder_blocks:
            x = run(block, x)
        return self.decoder_pred(self.decoder_norm(x))

"""MixMAE: Mixed and Masked Autoencoder (Liu et al., CVPR 2023)."""
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.mixing import random_mixing_mask
from .mixmae_sizes import check_built_sizes, check_no_shift, derive_decoder_cfg, derive_head_cfg


@MODELS.register_module()
class MixMAE(BaseSelfSupervisor):
    """Mix two images at the stride-32 grid, encode them apart, reconstruct both.

    Args:
        backbone: a ``MixMAESwin`` config.
        neck: the decoder (``MixMAEDecoder``); its ``in_channels``, ``img_size`` and
            ``encoder_stride`` are taken from the backbone (stated values must agree).
        head: the loss (``MixMAEPretrainHead``); ``patch_size`` = the backbone's stride.
        mask_ratio: share of cells sample i takes from sample ``B-1-i`` (0.5).
        range_mask_ratio: adds ``U(0, r)`` to the ratio at each step (0).
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 mask_ratio: float = 0.5,
                 range_mask_ratio: float = 0.0,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
        if not 0.0 <= mask_ratio <= 1.0 or not 0.0 <= mask_ratio + range_mask_ratio <= 1.0:
            raise ValueError(f'mask_ratio {mask_ratio} + range_mask_ratio {range_mask_ratio} '
                             'must stay within [0, 1]')
        if not isinstance(backbone, torch.nn.Module):
            backbone = MODELS.build(backbone)
        check_no_shift(backbone)
        neck = derive_decoder_cfg(neck, backbone) if isinstance(neck, dict) else neck
        head = derive_head_cfg(head, backbone) if isinstance(head, dict) else head
        check_built_sizes(neck, head, backbone)
        super().__init__(backbone=backbone, neck=neck, head=head, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.mask_ratio = mask_ratio
        self.range_mask_ratio = range_mask_ratio

    def sample_mask(self, inputs: torch.Tensor,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One ``[1, 1, H/32, W/32]`` mask for the whole batch ``inputs [B, 3, H, W]``.

        The sizes are checked first (:meth:`MixMAESwin.check_pretrain_input`).  With a
        ``generator`` every random draw comes from it (reproducible masks, e.g. for the
        reconstruction tools); without, from the global generators (training).
        """
        self.backbone.check_pretrain_input(inputs)
        stride = self.backbone.encoder_stride
        grid = (inputs.shape[-2] // stride, inputs.shape[-1] // stride)
        return random_mixing_mask(grid, self.mask_ratio, self.range_mask_ratio, inputs.device,
                                  generator=generator)

    @property
    def dual(self) -> bool:
        """Dual reconstruction (both branches of every mixed sample) iff the encoder mixes."""
        return self.backbone.fill_mode == 'mix'

    def forward_pretrain(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder, decoder: the predictions the loss scores.

        Args:
            inputs: normalized ``[B, 3, H, W]``.
            mask: ``[1, 1, H/32, W/32]`` from :meth:`sample_mask`.

        Returns:
            ``[2B, L, 32*32*3]`` with dual reconstruction (rows ``:B`` predict each mixed
            sample's own image, rows ``B:`` its partner's), else ``[B, L, 32*32*3]``;
            ``L = H/32 * W/32``.
        """
        latent, mask = self.backbone(inputs, mask)
        return self.neck(latent, mask, dual=self.dual)

    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs)

    def loss(self,
             inputs: Union[torch.Tensor, List[torch.Tensor]],
             data_samples: Optional[List[DataSample]] = None,
             mask: Optional[torch.Tensor] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """``inputs``: normalized ``[B, 3, H, W]``; ``mask``: optional ``[1, 1, H/32, W/32]``."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        if mask is None:
            mask = self.sample_mask(inputs)
        pred = self.forward_pretrain(inputs, mask)
        return dict(loss=self.head.loss(pred, inputs, mask, dual=self.dual))

"""Tiny mmpretrain MixMIM and mmmixmae models with shared weights (parity and converter tests)."""
import torch
import torch.nn.functional as F
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401


from .archs import TOY as ARCH
IMG = 64
WINDOWS = [4, 4, 2, 2]
ATOL = 1e-5


def perturb_(model, std=0.05, skip=('pos_embed', )):
    """Move every parameter off its (often trivial) init so that no term can hide."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(s in name for s in skip):
                p.add_(torch.randn_like(p) * std)


def stage_masks_ref(mask):
    """mmpretrain's random_masking output for a fixed [1, 1, 2, 2] mask (nearest upsampling)."""
    grid = mask.shape[-1]
    return tuple(
        F.interpolate(mask, size=(grid * s, grid * s), mode='nearest').reshape(1, -1, 1)
        for s in (8, 4, 2, 1))


def build_mmpretrain_mixmim(seed=0):
    torch.manual_seed(seed)
    ref = MODELS.build(
        dict(
            type='MixMIM',
            backbone=dict(type='MixMIMPretrainTransformer', arch=ARCH, img_size=IMG,
                          window_size=WINDOWS),
            neck=dict(type='MixMIMPretrainDecoder', num_patches=(IMG // 32)**2, embed_dim=128,
                      encoder_stride=32, decoder_embed_dim=32, decoder_depth=2,
                      decoder_num_heads=2,
                      # the official decoder uses nn.LayerNorm's default eps
                      norm_cfg=dict(type='LN', eps=1e-5)),
            head=dict(type='MixMIMPretrainHead',
                      loss=dict(type='PixelReconstructionLoss', criterion='L2'), norm_pix=True)))
    ref.init_weights()  # fills mmpretrain's sin-cos tables
    perturb_(ref)
    return ref.eval()


def build_ours_mixmae():
    return MODELS.build(
        dict(type='MixMAE',
             backbone=dict(type='MixMAESwin', arch=ARCH, img_size=IMG,
                           window_size=tuple(WINDOWS)),
             neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=2,
                       num_heads=2, img_size=IMG),
             head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True))).eval()


def run_mmpretrain(ref, x, mask):
    ref.backbone.random_masking = lambda *args, **kwargs: stage_masks_ref(mask)
    with torch.no_grad():
        latent, _ = ref.backbone(x)
        loss = ref.loss(x, None)['loss']
    return latent, loss


def run_ours(model, x, mask):
    with torch.no_grad():
        latent, _ = model.backbone(x, mask)
        loss = model.loss(x, None, mask=mask)['loss']
    return latent, loss


def _mmpretrain_classifier(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='MixMIMTransformer', arch=ARCH, img_size=IMG,
                           window_size=WINDOWS),
             head=dict(type='LinearClsHead', num_classes=7, in_channels=128)))
    # MixMIMTransformer leaves its (fixed) table at zero; a checkpoint fine-tuned from an
    # mmpretrain pretraining carries mmpretrain's sin-cos table
    model.backbone.absolute_pos_embed.data.copy_(
        build_2d_sincos_position_embedding(IMG // 4, ARCH['embed_dims']))
    perturb_(model, std=0.1)
    return model.eval()


def _ours_classifier(num_classes=7):
    return MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='MixMAESwin', arch=ARCH, img_size=IMG,
                           window_size=tuple(WINDOWS), out_type='avg_featmap'),
             head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=128))).eval()

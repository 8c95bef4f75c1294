"""Parity with mmpretrain's MixMIM (issue 3), through the checkpoint converter (issue 4).

mmpretrain's ``MixMIMPretrainTransformer`` + ``MixMIMPretrainDecoder`` + ``MixMIMPretrainHead``
and ``MixMIMTransformer`` are structurally the official Sense-X/MixMIM code.  Random weights
are given to them, converted with ``convert_mmpretrain`` and loaded strictly into mmmixmae;
the latent, the loss and the classifier features must agree to fp32 round-off.

The independent pieces checked on their own first: mmpretrain's sin-cos table is ours with
the halves swapped, and mmcv's ``PatchMerging`` (``nn.Unfold`` order) equals our patch
merging once the converter's channel permutation is applied.
"""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import PatchMerging as MMCVPatchMerging
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401
from mmmixmae.models.backbones.mixmae_swin import PatchMerging
from mmmixmae.checkpoint.convert import convert_mmpretrain
from mmmixmae.checkpoint.layout import (block_major_to_unfold, sincos_layout,
                                        unfold_to_block_major)
from mmmixmae.models.utils.pos_embed import build_2d_sincos_pos_embed, swap_sincos_halves

ARCH = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])
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


def test_mmpretrain_sincos_is_ours_with_swapped_halves():
    for dims, side in ((16, 16), (32, 7), (128, 56)):
        theirs = build_2d_sincos_position_embedding(side, dims)
        ours = build_2d_sincos_pos_embed(dims, side)
        assert torch.allclose(theirs, swap_sincos_halves(ours), atol=2e-5)
        assert (theirs - ours).abs().max() > 0.5  # really a different layout
        assert sincos_layout(theirs) == 'mmpretrain' and sincos_layout(ours) == 'mae'
    assert sincos_layout(torch.zeros(1, 16, 8)) == 'zeros'
    assert sincos_layout(torch.randn(1, 16, 8)) == 'other'


@pytest.mark.parametrize('channels,hw', [(8, (4, 4)), (6, (6, 2))])
def test_unfold_reorder_turns_mmcv_patch_merging_into_ours(channels, hw):
    torch.manual_seed(1)
    theirs = MMCVPatchMerging(in_channels=channels, out_channels=2 * channels,
                              norm_cfg=dict(type='LN'))
    perturb_(theirs, std=0.3)
    ours = PatchMerging(channels, 2 * channels)
    ours.load_state_dict({
        'norm.weight': unfold_to_block_major(theirs.norm.weight.data),
        'norm.bias': unfold_to_block_major(theirs.norm.bias.data),
        'reduction.weight': unfold_to_block_major(theirs.reduction.weight.data),
    })
    x = torch.randn(3, hw[0] * hw[1], channels)
    with torch.no_grad():
        expected, out_hw = theirs(x, hw)
        got, got_hw = ours(x, hw)
    assert tuple(out_hw) == tuple(got_hw)
    assert torch.allclose(got, expected, atol=ATOL)
    # without the permutation the two layers disagree
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items()})
    with torch.no_grad():
        assert (ours(x, hw)[0] - expected).abs().max() > 1e-2
    w = torch.randn(5, 4 * channels)
    assert torch.equal(block_major_to_unfold(unfold_to_block_major(w)), w)


@pytest.mark.parametrize('cells,batch', [([1, 2], 3), ([0, 3], 2), ([3, 1], 4)])
def test_pretraining_latent_and_loss_equal_mmpretrain(cells, batch):
    ref = build_mmpretrain_mixmim()
    result = convert_mmpretrain(ref.state_dict())
    assert result.kind == 'pretrain'
    assert result.meta['pos_embed_layout'] == {'backbone.absolute_pos_embed': 'mmpretrain',
                                               'neck.decoder_pos_embed': 'mmpretrain'}
    ours = build_ours_mixmae()
    ours.load_state_dict(result.state_dict, strict=True)

    mask = torch.zeros(1, 1, 2, 2)
    mask.view(-1)[cells] = 1.
    torch.manual_seed(batch)
    x = torch.randn(batch, 3, IMG, IMG)
    latent_ref, loss_ref = run_mmpretrain(ref, x, mask)
    latent, loss = run_ours(ours, x, mask)
    assert latent.shape == latent_ref.shape == (batch, 4, 128)
    assert torch.allclose(latent, latent_ref, atol=ATOL), (latent - latent_ref).abs().max()
    assert torch.allclose(loss, loss_ref, atol=ATOL, rtol=1e-6), (loss, loss_ref)
    assert loss_ref > 0.5  # a real reconstruction error, not a degenerate zero


def test_swapping_the_pos_halves_would_break_parity():
    """Why the converter keeps mmpretrain's tables verbatim: the weights were trained with
    them; giving our model the MAE-layout table changes every output."""
    ref = build_mmpretrain_mixmim(seed=3)
    result = convert_mmpretrain(ref.state_dict())
    swapped = dict(result.state_dict)
    for key in ('backbone.absolute_pos_embed', 'neck.decoder_pos_embed'):
        swapped[key] = swap_sincos_halves(swapped[key])
    ours = build_ours_mixmae()
    ours.load_state_dict(swapped, strict=True)
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    x = torch.randn(2, 3, IMG, IMG)
    latent_ref, loss_ref = run_mmpretrain(ref, x, mask)
    latent, loss = run_ours(ours, x, mask)
    assert (latent - latent_ref).abs().max() > 0.1
    assert abs(loss - loss_ref) > 1e-4


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


def test_classifier_features_and_logits_equal_mmpretrain():
    ref = _mmpretrain_classifier()
    result = convert_mmpretrain(ref.state_dict())
    assert result.kind == 'classifier' and result.meta['num_classes'] == 7
    ours = _ours_classifier()
    ours.load_state_dict(result.state_dict, strict=True)
    x = torch.randn(3, 3, IMG, IMG)
    with torch.no_grad():
        feat_ref = ref.extract_feat(x)[0]
        feat = ours.extract_feat(x)[0]
        logits_ref = ref(x, mode='tensor')
        logits = ours(x, mode='tensor')
    assert feat.shape == feat_ref.shape == (3, 128)
    assert torch.allclose(feat, feat_ref, atol=ATOL), (feat - feat_ref).abs().max()
    assert torch.allclose(logits, logits_ref, atol=ATOL)
    assert feat_ref.std() > 0.1  # features are not a constant


def test_bare_mmpretrain_backbone_state_dict_converts():
    ref = _mmpretrain_classifier(seed=5)
    bare = {k[len('backbone.'):]: v for k, v in ref.state_dict().items()
            if k.startswith('backbone.')}
    result = convert_mmpretrain(bare)
    assert result.kind == 'backbone'
    ours = _ours_classifier()
    ours.backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in result.state_dict.items()}, strict=True)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert torch.allclose(ours.extract_feat(x)[0], ref.extract_feat(x)[0], atol=ATOL)

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
from mmcv.cnn.bricks.transformer import PatchMerging as MMCVPatchMerging
from mmpretrain.models.utils import build_2d_sincos_position_embedding

import mmmixmae  # noqa: F401
from mmmixmae.models.backbones.mixmae_blocks import PatchMerging
from mmmixmae.checkpoint.convert import convert_mmpretrain
from mmmixmae.checkpoint.layout import (block_major_to_unfold, sincos_layout,
                                        unfold_to_block_major)
from mmmixmae.models.utils.pos_embed import build_2d_sincos_pos_embed, swap_sincos_halves
from helpers.parity import (ARCH, ATOL, IMG, WINDOWS, _mmpretrain_classifier, _ours_classifier,
                            build_mmpretrain_mixmim, build_ours_mixmae, perturb_, run_mmpretrain,
                            run_ours, stage_masks_ref)  # noqa: F401


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

import pytest
import torch

import mmmixmae  # noqa: F401
from mmpretrain.registry import MODELS

from mmmixmae.models.heads import patchify, unpatchify
from mmmixmae.models.utils.mixing import random_mixing_mask


def build(**overrides):
    backbone = dict(type='MixMAESwin', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                 num_heads=[1, 2, 2, 4]),
                    img_size=64, window_size=(4, 4, 2, 2))
    backbone.update(overrides.pop('backbone', {}))
    cfg = dict(type='MixMAE', backbone=backbone,
               neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=1,
                         num_heads=2, img_size=64),
               head=dict(type='MixMAEPretrainHead', patch_size=32))
    cfg.update(overrides)
    return MODELS.build(cfg)


def test_patchify_roundtrip_and_layout():
    x = torch.randn(2, 3, 64, 96)
    p = patchify(x, 32)
    assert p.shape == (2, 6, 3072)
    # patch 1 is the top row, second column; values in (row, col, channel) order
    assert torch.equal(p[0, 1].reshape(32, 32, 3), x[0, :, :32, 32:64].permute(1, 2, 0))
    assert torch.equal(unpatchify(p, 32, (2, 3)), x)


def test_loss_equals_hand_computation():
    torch.manual_seed(0)
    model = build()
    x = torch.randn(4, 3, 64, 64)
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    loss = model.loss(x, mask=mask)['loss']

    latent, _ = model.backbone(x, mask)
    pred = model.neck(latent, mask, dual=True)  # [2B, L, P]
    assert pred.shape == (8, 4, 3072)
    # normalized-pixel targets with unbiased variance, eps 1e-6
    target = torch.zeros(4, 4, 3072)
    for b in range(4):
        for cell in range(4):
            r, c = divmod(cell, 2)
            patch = x[b, :, r * 32:(r + 1) * 32, c * 32:(c + 1) * 32].permute(1, 2, 0).reshape(-1)
            target[b, cell] = (patch - patch.mean()) / (patch.var(unbiased=True) + 1e-6)**.5
    total = 0.
    m = mask.reshape(-1)
    for b in range(4):
        for cell in range(4):
            if m[cell] == 1:  # own image, masked for sample b: first branch of sample b
                rec = pred[b, cell]
            else:  # masked for sample b's partner: second branch of the partner
                rec = pred[4 + (3 - b), cell]
            total = total + ((rec - target[b, cell])**2).sum()
    expected = total / (4 * 4 * 3072)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_loss_is_about_one_at_init_and_backprops():
    torch.manual_seed(0)
    model = build()
    out = model.loss(torch.randn(2, 3, 64, 64))
    assert 0.5 < out['loss'].item() < 3.0
    out['loss'].backward()
    assert model.neck.mask_token.grad.abs().sum() > 0
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_norm_pix_switch_changes_target():
    model = build(head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=False))
    x = torch.rand(1, 3, 32, 32) * 10
    assert torch.equal(model.head.construct_target(x), patchify(x, 32))
    normed = build().head.construct_target(x)
    assert torch.allclose(normed.mean(-1), torch.zeros(1, 1), atol=1e-5)


def test_mask_ratio_and_range_are_used():
    torch.manual_seed(0)
    model = build(mask_ratio=0.25)
    mask = model.sample_mask(torch.zeros(2, 3, 64, 64))
    assert int(mask.sum()) == 1
    model = build(mask_ratio=0.0, range_mask_ratio=1.0)
    counts = {int(model.sample_mask(torch.zeros(1, 3, 64, 64)).sum()) for _ in range(50)}
    assert len(counts) > 2
    with pytest.raises(ValueError, match='must stay within'):
        build(mask_ratio=0.8, range_mask_ratio=0.5)


def test_single_branch_for_fill_ablations():
    torch.manual_seed(0)
    model = build(backbone=dict(fill_mode='mask_token', attn_isolation=False))
    x = torch.randn(2, 3, 64, 64)
    mask = torch.tensor([[[[1., 0.], [0., 0.]]]])
    loss = model.loss(x, mask=mask)['loss']
    latent, _ = model.backbone(x, mask)
    pred = model.neck(latent, mask, dual=False)
    assert pred.shape == (2, 4, 3072)
    target = model.head.construct_target(x)
    expected = ((pred[:, 0] - target[:, 0])**2).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_decoder_depth_and_width_are_config_fields():
    model = build(neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=64, depth=3,
                            num_heads=4, img_size=64))
    assert len(model.neck.decoder_blocks) == 3
    assert model.neck.decoder_embed.out_features == 64
    assert model.neck.decoder_pred.out_features == 3072
    assert model.loss(torch.randn(2, 3, 64, 64))['loss'].isfinite()


def test_bad_sizes_are_refused_before_compute():
    model = build()
    with pytest.raises(ValueError, match='multiples of 32, got 48x64'):
        model.loss(torch.randn(2, 3, 48, 64))


def test_sample_mask_with_a_generator_is_reproducible_and_leaves_global_state():
    model = build(mask_ratio=0.25, range_mask_ratio=0.5)
    x = torch.zeros(2, 3, 128, 128)  # 4x4 cells
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = model.sample_mask(x, generator=torch.Generator().manual_seed(7))
    b = model.sample_mask(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), before)  # nothing drawn from the global generator
    assert torch.equal(a, b) and a.shape == (1, 1, 4, 4)
    # ratio 0.25 + 0.5 * u with u drawn first from the generator, then the cell noise
    gen = torch.Generator().manual_seed(7)
    u = float(torch.rand((), generator=gen))
    expected = int(16 * (0.25 + 0.5 * u))
    noise = torch.rand(16, generator=gen)
    assert int(a.sum()) == expected
    assert set(torch.nonzero(a.reshape(-1)).reshape(-1).tolist()) == \
        set(torch.argsort(noise)[:expected].tolist())
    with pytest.raises(ValueError, match='multiples of 32'):
        model.sample_mask(torch.zeros(2, 3, 100, 128))


def test_forward_pretrain_is_what_the_loss_scores():
    torch.manual_seed(0)
    model = build()
    x = torch.randn(4, 3, 64, 64)
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    pred = model.forward_pretrain(x, mask)
    latent, _ = model.backbone.forward_mixed(x, mask)
    assert torch.equal(pred, model.neck(latent, mask, dual=True))
    assert pred.shape == (8, 4, 3072)
    loss = model.loss(x, mask=mask)['loss']
    assert torch.equal(loss, model.head.loss(pred, x, mask, dual=True))
    single = build(backbone=dict(fill_mode='zeros'))
    assert not single.dual and single.forward_pretrain(x, mask).shape == (4, 4, 3072)

"""The grouped (isolation-aware) attention path equals the dense masked path, never leaks."""
import pytest
import torch

import mmmixmae  # noqa: F401
from mmpretrain.registry import MODELS

from mmmixmae.models.backbones.mixmae_swin import MixMAESwin
from mmmixmae.models.utils.attn_path import resolve_attn_path
from mmmixmae.models.utils.attn_work import attention_work
from mmmixmae.models.utils.grouped_attention import (build_group_plan, from_slots,
                                                      grouped_attention, to_slots)
from mmmixmae.models.utils.mixing import random_mixing_mask, stage_masks
from mmmixmae.models.utils.rel_pos import get_relative_position_index

# 224 px with Swin/W14 windows: stage-0 windows (56 px) straddle the 32-px mixing cells
ARCH_224 = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])


def build(path: str, img: int = 224, windows=(14, 14, 14, 7)):
    cfg = dict(type='MixMAE',
               backbone=dict(type='MixMAESwin', arch=ARCH_224, img_size=img,
                             window_size=windows, attn_path=path),
               neck=dict(type='MixMAEDecoder', in_channels=64, embed_dims=16, depth=1,
                         num_heads=2, img_size=img),
               head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True))
    return MODELS.build(cfg)


def run(model, x, mask):
    latent, _ = model.backbone(x, mask)
    loss = model.loss(x, mask=mask)['loss']
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return latent.detach(), loss.detach(), grads


@pytest.mark.parametrize('img,windows,ratio', [(224, (14, 14, 14, 7), 0.5),
                                               (224, (14, 14, 14, 7), 0.0),
                                               (224, (14, 14, 14, 7), 1.0),
                                               (64, (4, 4, 2, 2), 0.5),
                                               (64, (2, 2, 1, 1), 0.25)])
def test_grouped_equals_dense_latent_loss_and_gradients(img, windows, ratio):
    torch.manual_seed(0)
    dense = build('dense', img, windows)
    grouped = build('grouped', img, windows)
    grouped.load_state_dict(dense.state_dict())
    x = torch.randn(2, 3, img, img)
    mask = random_mixing_mask((img // 32, img // 32), ratio,
                              generator=torch.Generator().manual_seed(3))
    ld, lossd, gd = run(dense, x, mask)
    lg, lossg, gg = run(grouped, x, mask)
    assert gd.keys() == gg.keys() and len(gd) > 20
    torch.testing.assert_close(lg, ld, atol=1e-5, rtol=0)
    torch.testing.assert_close(lossg, lossd, atol=1e-5, rtol=0)
    for name in gd:
        torch.testing.assert_close(gg[name], gd[name], atol=1e-5, rtol=1e-5, msg=name)
    assert ld.abs().max() > 0.1  # not a trivially zero latent


@pytest.mark.parametrize('dtype', [None, torch.bfloat16, torch.float16])
def test_grouped_path_never_leaks_across_images(dtype):
    """Changing what sample 1 takes from its partner leaves its own-image latent bit-equal."""
    torch.manual_seed(0)
    model = MixMAESwin(arch=ARCH_224, img_size=224, attn_path='grouped').eval()
    mask = random_mixing_mask((7, 7), 0.5, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, 224, 224)
    # sample 1 holds image 0 at the mask-1 cells: perturb image 0 only there
    cells = torch.nn.functional.interpolate(mask, size=(224, 224), mode='nearest')
    y = x.clone()
    y[0] += 3. * cells[0]
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        a, _ = model(x, mask)
        b, _ = model(y, mask)
    own = mask.reshape(-1) == 0
    assert torch.equal(a[1][own], b[1][own])
    assert (a[1][~own] - b[1][~own]).abs().max() > 1e-3  # the perturbation did arrive
    assert torch.equal(a[0], b[0])  # sample 0 holds image 0 only at the mask-0 cells


def test_plan_is_a_permutation_with_little_padding():
    mask = stage_masks(random_mixing_mask((7, 7), 0.5, generator=torch.Generator().manual_seed(0)),
                       [(56, 56)])[0]
    plan = build_group_plan(mask, (56, 56), (14, 14), get_relative_position_index((14, 14)))
    assert sorted(plan.src[plan.inverse].tolist()) == list(range(56 * 56))
    assert torch.equal(plan.src[plan.inverse], torch.arange(56 * 56))
    assert sum(plan.piece_sizes) == 56 * 56
    grouped, dense = plan.work()
    assert dense == 16 * 196**2
    assert plan.exact_work() <= grouped <= 1.1 * plan.exact_work()
    # a ratio of 0 keeps every window whole: one exact bucket of 16 pieces of 196 tokens
    whole = build_group_plan(torch.zeros(1, 56 * 56, 1), (56, 56), (14, 14),
                             get_relative_position_index((14, 14)))
    assert [(b.num_pieces, b.size, b.key_pad) for b in whole.buckets] == [(16, 196, None)]


def test_attention_work_share_at_ratio_half_224():
    report = attention_work(MixMAESwin(arch='base'), img_size=224, mask_ratio=0.5, num_masks=4)
    stages = report['stages']
    # 24 of 49 cells mixed; one window per stage (2x2-token cells at stage 2, 1 at stage 3)
    assert stages[2]['exact_share'] == pytest.approx((24**2 + 25**2) / 49**2, abs=1e-12)
    assert stages[3]['exact_share'] == pytest.approx((24**2 + 25**2) / 49**2, abs=1e-12)
    assert 0.55 < stages[0]['exact_share'] < 0.65  # windows straddle the cells
    assert report['total']['exact_share'] <= report['total']['share'] <= 0.6
    # 2 * nW * N^2 * C per block: (16 windows, 128 ch, 2 blocks), (4, 256, 2), (1, 512, 18),
    # and stage 3's one 49-token window (1024 ch, 2 blocks)
    dense = 2 * 196**2 * (16 * 128 * 2 + 4 * 256 * 2 + 512 * 18) + 2 * 49**2 * 1024 * 2
    assert report['total']['dense_macs'] == pytest.approx(dense, rel=1e-12)


def test_attn_path_names():
    with pytest.raises(ValueError, match="attn_path must be one of.*'flash'"):
        MixMAESwin(arch=ARCH_224, img_size=64, window_size=(4, 4, 2, 2), attn_path='flash')
    assert resolve_attn_path('auto') == 'grouped'
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert resolve_attn_path('auto', 'cpu') == 'dense'
    assert resolve_attn_path('dense') == 'dense'
    two_blocks = dict(ARCH_224, depths=[2, 2, 2, 2])  # shifted windows in every second block
    model = MixMAESwin(arch=two_blocks, img_size=64, window_size=(4, 4, 2, 2), shift_window=True,
                       attn_path='grouped')
    # shifted windows never take a pretraining mask, whatever the attention path
    with pytest.raises(ValueError, match='shift_window=True cannot take a pretraining mask'):
        model(torch.randn(2, 3, 64, 64), random_mixing_mask((2, 2), 0.5))


@pytest.mark.parametrize('pad_tol', [0.25, 1.0])
def test_padded_slots_equal_exact_buckets_through_two_blocks(pad_tol):
    """Padding pieces into shared buckets (fewer, larger products) changes nothing: padded
    slots flow through per-token layers and two attention layers, yet outputs and every
    gradient equal the exact (pure permutation) plan's."""
    torch.manual_seed(0)
    hw, window, c, heads = (28, 28), (14, 14), 16, 2
    mask = stage_masks(random_mixing_mask((7, 7), 0.5, generator=torch.Generator().manual_seed(5)),
                       [hw])[0]
    rel = get_relative_position_index(window)
    exact = build_group_plan(mask, hw, window, rel, 0.)
    padded = build_group_plan(mask, hw, window, rel, pad_tol)
    assert exact.pad_slots is None and exact.num_slots == 28 * 28
    assert padded.pad_slots is not None and padded.num_slots > exact.num_slots
    assert len(padded.buckets) < len(exact.buckets)
    x = torch.randn(2, 28 * 28, c)
    table = torch.randn(27 * 27, heads)
    qkv = [torch.nn.Linear(c, 3 * c) for _ in range(2)]
    probe = torch.randn(2, 28 * 28, c)

    def run(plan):
        xs = x.clone().requires_grad_()
        tab = table.clone().requires_grad_()
        for lin in qkv:
            lin.zero_grad()
        t = to_slots(xs, plan)
        for lin in qkv:  # two pre-norm blocks: the padded slots live through both
            t = t + grouped_attention(lin(torch.nn.functional.layer_norm(t, (c, ))), plan, tab,
                                      heads, (c // heads)**-0.5)
        out = from_slots(t, plan)
        (out * probe).sum().backward()
        return out.detach(), xs.grad, tab.grad, [lin.weight.grad.clone() for lin in qkv]

    out_e, gx_e, gt_e, gw_e = run(exact)
    out_p, gx_p, gt_p, gw_p = run(padded)
    torch.testing.assert_close(out_p, out_e, atol=1e-5, rtol=0)
    torch.testing.assert_close(gx_p, gx_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gt_p, gt_e, atol=1e-4, rtol=1e-5)
    for a, b in zip(gw_p, gw_e):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)
    assert gt_e.abs().max() > 0.1 and gx_e.abs().max() > 0.1


def test_slot_order_round_trip_and_wrong_sizes():
    mask = stage_masks(random_mixing_mask((2, 2), 0.5, generator=torch.Generator().manual_seed(0)),
                       [(8, 8)])[0]
    plan = build_group_plan(mask, (8, 8), (4, 4), get_relative_position_index((4, 4)))
    x = torch.randn(3, 64, 5)
    assert torch.equal(from_slots(to_slots(x, plan), plan), x)
    # exact buckets (pad_tol 0): the slot order is a permutation of the grid
    assert sorted(plan.src.tolist()) == list(range(64))
    with pytest.raises(ValueError, match='63 tokens, the plan was built for 64'):
        to_slots(x[:, :63], plan)
    with pytest.raises(ValueError, match='65 slots, the plan has 64'):
        from_slots(torch.randn(3, 65, 5), plan)


@pytest.mark.parametrize('pad_tol', [0., 1.0])
def test_traced_path_equals_the_autograd_functions(pad_tol):
    """Under the JIT tracer (FLOP counting) the q/k/v split and the output merge run as plain
    autograd ops; they give the same outputs, and the functions the same gradients, as the
    plain ops do."""
    torch.manual_seed(0)
    hw, window, c, heads = (28, 28), (14, 14), 16, 2
    mask = stage_masks(random_mixing_mask((7, 7), 0.5, generator=torch.Generator().manual_seed(3)),
                       [hw])[0]
    plan = build_group_plan(mask, hw, window, get_relative_position_index(window), pad_tol)
    assert len(plan.buckets) > 1  # the merge really concatenates several buckets
    table = torch.randn(27 * 27, heads, requires_grad=True)
    qkv = torch.randn(2, plan.num_slots, 3 * c, requires_grad=True)

    def attend(t, tab):
        return grouped_attention(t, plan, tab, heads, (c // heads)**-0.5)

    eager = attend(qkv, table)
    traced = torch.jit.trace(attend, (qkv, table), check_trace=False)
    torch.testing.assert_close(traced(qkv, table), eager, atol=1e-6, rtol=0)
    # gradients of the functions against autograd's chain (the traced graph's ops)
    probe = torch.randn_like(eager)
    g_fn = torch.autograd.grad((eager * probe).sum(), (qkv, table))
    g_ref = torch.autograd.grad((traced(qkv, table) * probe).sum(), (qkv, table))
    for a, b in zip(g_fn, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

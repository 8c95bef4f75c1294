"""``compile=True`` on the backbone and the decoder: the compiled train step equals eager."""
import copy

import pytest
import torch

import mmmixmae  # noqa: F401
from mmpretrain.registry import MODELS

from mmmixmae.models.utils.compile import check_compile_cfg, set_compile
from mmmixmae.models.utils.mixing import random_mixing_mask

ARCH = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])


def build(compile_, path='grouped'):
    return MODELS.build(dict(
        type='MixMAE',
        backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2),
                      attn_path=path, compile=compile_),
        neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=2, num_heads=2,
                  img_size=64, compile=compile_),
        head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True)))


@pytest.mark.slow
def test_compiled_train_steps_equal_eager():
    torch.manual_seed(0)
    eager = build(False)
    comp = build(True)
    comp.load_state_dict(eager.state_dict())
    start = eager.backbone.layers[0].blocks[0].mlp.fc1.weight.detach().clone()
    # SGD: AdamW's normalisation would blow rounding noise in exactly-zero gradients (the
    # key biases') up to full-size steps
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (eager, comp)]
    x = torch.randn(2, 3, 64, 64)
    for step in range(3):  # a new mask each step: new bucket shapes, no recompile of the MLPs
        mask = random_mixing_mask((2, 2), 0.5, generator=torch.Generator().manual_seed(step))
        losses, grads = [], []
        for model, opt in zip((eager, comp), opts):
            loss = model.loss(x, mask=mask)['loss']
            loss.backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                          if p.grad is not None})
            opt.step()
            opt.zero_grad()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)
        assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 40
        for name, g in grads[0].items():
            torch.testing.assert_close(grads[1][name], g, atol=1e-5, rtol=1e-5, msg=name)
    for (name, a), b in zip(eager.state_dict().items(), comp.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)
    # the weights did move: the comparison is not between two untouched models
    assert not torch.equal(eager.backbone.layers[0].blocks[0].mlp.fc1.weight, start)
    # deep copies are independent of their original (compiled functions take the block)
    twin = copy.deepcopy(comp)
    with torch.no_grad():
        twin.backbone.layers[0].blocks[0].mlp.fc2.weight.mul_(3.)
    mask = random_mixing_mask((2, 2), 0.5, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert not torch.equal(twin.loss(x, mask=mask)['loss'], comp.loss(x, mask=mask)['loss'])


def test_compile_option_is_checked():
    assert check_compile_cfg(False) is None and check_compile_cfg(None) is None
    assert check_compile_cfg(True) == {}
    assert check_compile_cfg(dict(mode='max-autotune')) == dict(mode='max-autotune')
    with pytest.raises(ValueError, match=r"torch.compile takes no \['modee'\]"):
        build(dict(modee='default'))
    with pytest.raises(ValueError, match="compile must be True, False or a dict"):
        build('yes')


def test_set_compile_reaches_every_block():
    model = build(False)
    # 5 encoder blocks and the decoder
    assert set_compile(model, True) == 6
    assert all(m.compile_cfg == {} for m in model.modules() if hasattr(m, 'compile_cfg'))
    assert set_compile(model, False) == 6
    assert set_compile(torch.nn.Linear(2, 2), True) == 0

"""The DeepSpeed ZeRO L/H configs differ from their DDP parents only in what DeepSpeed changes,
and the model trains in deepspeed's bf16 mode (every weight and input in bfloat16)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from _sharded_env import REPO

MIXMAE = osp.join(REPO, 'configs', 'mixmae')
ZERO = {f'mixmae_swin-{a}-w14_16xb128-zero{z}-amp-coslr-300e_in1k.py':
        (f'mixmae_swin-{a}-w14_16xb128-amp-coslr-300e_in1k.py', z)
        for a in ('large', 'huge') for z in (2, 3)}


def load(name):
    return Config.fromfile(osp.join(MIXMAE, name)).to_dict()


@pytest.mark.parametrize('name', sorted(ZERO))
def test_zero_config_changes_only_what_deepspeed_needs(name):
    parent_name, stage = ZERO[name]
    ours, parent = load(name), load(parent_name)
    assert set(ours) - set(parent) == {'runner_type', 'strategy'}
    changed = {k for k in parent if ours[k] != parent[k]}
    assert changed == {'optim_wrapper', 'default_hooks'} | ({'model'} if stage == 3 else set())
    if stage == 3:  # per-block activation checkpointing, nothing else
        assert ours['model']['backbone'] == dict(parent['model']['backbone'], with_cp=True)
        assert {k for k in parent['model'] if ours['model'][k] != parent['model'][k]} == \
            {'backbone'}
    ow, pw = ours['optim_wrapper'], parent['optim_wrapper']
    assert pw['type'] == 'AmpOptimWrapper'
    assert ow == dict(type='DeepSpeedOptimWrapper', optimizer=pw['optimizer'],
                      paramwise_cfg=pw['paramwise_cfg'])
    hooks, phooks = ours['default_hooks'], parent['default_hooks']
    assert {k for k in phooks if hooks[k] != phooks[k]} == {'checkpoint'}
    assert hooks['checkpoint'] == dict(phooks['checkpoint'], type='CheckpointHook')
    assert ours['runner_type'] == 'FlexibleRunner'
    zero = dict(stage=stage, overlap_comm=True, contiguous_gradients=True)
    if stage == 3:
        zero['stage3_gather_16bit_weights_on_model_save'] = False
    assert ours['strategy'] == dict(
        type='DeepSpeedStrategy', zero_optimization=zero, bf16=dict(enabled=True),
        config=dict(communication_data_type='fp32'), inputs_to_half=['inputs'],
        gradient_clipping=0.0, gradient_accumulation_steps=1,
        train_micro_batch_size_per_gpu=parent['train_dataloader']['batch_size'])


def test_toy_model_trains_in_bfloat16():
    """deepspeed's bf16 mode casts the module and (inputs_to_half) the images to bfloat16; the
    mixing masks keep that dtype (they used to come back float32 and promote the tokens, which
    bfloat16 LayerNorm weights refuse on CPU)."""
    import mmmixmae.engine  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(MIXMAE, 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).bfloat16()
    images = torch.randn(2, 3, 64, 64).bfloat16()
    loss = model.loss(images)['loss']
    loss.backward()
    assert torch.isfinite(loss) and 0.5 < loss.item() < 2.0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.bfloat16 for g in grads)

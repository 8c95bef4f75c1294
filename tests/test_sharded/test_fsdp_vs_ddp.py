"""FSDP (mmengine FSDPStrategy + mmmixmae.compat.fsdp) vs DDP on 2 gloo CPU ranks."""
import pytest


@pytest.fixture(scope='module')
def results(fsdp_run):
    return fsdp_run[1]


@pytest.mark.slow
def test_fsdp_equals_ddp_losses_and_weights(results):
    assert results['fsdp_losses'] == results['ddp_losses']
    ddp, fsdp = results['ddp_state'], results['fsdp_state']
    assert set(ddp) == set(fsdp)
    assert max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp) == 0.0


@pytest.mark.slow
def test_layer_decay_groups_match_per_parameter(results):
    ddp, fsdp = results['lr_ddp'], results['lr_fsdp']
    assert len(ddp) == 69 and set(ddp) == set(fsdp)
    assert {k: fsdp[k] for k in ddp if fsdp[k] != ddp[k]} == {}
    assert ddp['head.fc.weight'] == (1e-3, 0.05)
    assert ddp['backbone.patch_embed.proj.weight'] == pytest.approx((1e-3 * 0.7**5, 0.05))


@pytest.mark.slow
def test_other_wrap_policy_refused(results):
    assert 'different FSDP wrap policy' in results['policy_error']
    assert 'rank0.pth' in results['policy_error']


@pytest.mark.slow
def test_mmpretrain_layer_decay_groups_match_per_parameter(results):
    """mmpretrain's LearningRateDecayOptimWrapperConstructor (the fine-tuning configs' one,
    kept by the sharded L fine-tuning config) sees FSDP's wrapped names: same groups."""
    ddp, fsdp = results['mm_ddp'], results['mm_fsdp']
    assert len(ddp) == 69 and set(ddp) == set(fsdp)
    assert {k: (ddp[k], fsdp[k]) for k in ddp if fsdp[k] != ddp[k]} == {}
    assert ddp['backbone.patch_embed.proj.weight'] == pytest.approx((1e-3 * 0.7**5, 0.05))
    assert ddp['backbone.norm.weight'][1] == 0.0  # flat_decay_mult=0


@pytest.mark.slow
def test_shipped_strategy_trains_in_bf16_keeps_fp32_weights(results):
    """configs/mixmae/_base_/fsdp_block_bf16.py on the tiny model: finite losses close to the
    float32 run's (bfloat16 has 8 mantissa bits), weights saved in float32 and moved."""
    shipped, fp32 = results['shipped'], results['fsdp_losses']
    assert len(shipped['losses']) == len(fp32) == 3
    for bf16_loss, loss in zip(shipped['losses'], fp32):
        assert abs(bf16_loss - loss) < 0.05 * loss, (shipped['losses'], fp32)
    assert shipped['losses'] != fp32  # the mixed precision took effect
    assert 'torch.bfloat16' not in shipped['dtypes'] and 'torch.float32' in shipped['dtypes']
    assert shipped['moved'] > 1e-4

"""FSDP (mmengine FSDPStrategy + mmmixmae.compat.fsdp) vs DDP on 2 gloo CPU ranks."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp('fsdp')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_port=29671', osp.join(HERE, 'fsdp_worker.py'), str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return torch.load(out / 'results.pt')


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

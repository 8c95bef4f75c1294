"""The CPU fixes of mmmixmae.compat, in-process (the 2-process run through
tools/train.py is in tests/test_tools/test_dist_train.py)."""
import pytest
import torch
import torch.nn as nn

from mmmixmae.compat import apply_compat
from mmmixmae.utils.errors import UserError

apply_compat()

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='checks the CPU-only code paths')


@pytest.mark.parametrize('launcher', ['pytorch', 'mpi', 'slurm'])
def test_init_dist_on_cpu(monkeypatch, launcher):
    from mmengine.dist import utils as dist_utils
    calls = []
    monkeypatch.setattr(dist_utils.torch_dist, 'init_process_group',
                        lambda backend, **kw: calls.append((backend, kw)))
    for key, value in dict(RANK='1', LOCAL_RANK='1', WORLD_SIZE='2',
                           OMPI_COMM_WORLD_LOCAL_RANK='1',
                           OMPI_COMM_WORLD_RANK='1', OMPI_COMM_WORLD_SIZE='2',
                           MASTER_ADDR='127.0.0.1', MASTER_PORT='29999',
                           SLURM_PROCID='1', SLURM_NTASKS='2',
                           SLURM_LOCALID='1',
                           SLURM_NODELIST='localhost').items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dist_utils.subprocess, 'getoutput',
                        lambda cmd: 'localhost')
    set_device = torch.cuda.set_device
    fn = getattr(dist_utils, f'_init_dist_{launcher}')
    with pytest.warns(UserWarning, match='gloo'):
        fn('nccl')
    assert calls[-1][0] == 'gloo'
    fn('gloo')  # an explicit CPU backend passes through, no warning
    assert calls[-1][0] == 'gloo'
    assert torch.cuda.set_device is set_device  # restored afterwards
    with pytest.raises(Exception):  # and still fails outside the guard
        torch.cuda.set_device(0)


def test_amp_optim_wrapper_on_cpu(monkeypatch):
    from mmengine.optim import AmpOptimWrapper
    monkeypatch.setenv('MMMIXMAE_CPU_AMP', 'bf16')  # this test checks the bf16 arithmetic
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(8, 3)
    y = torch.randn(8)
    w0 = model.weight.detach().clone()
    b0 = model.bias.detach().clone()

    # float32 reference gradient at the same point
    ref = nn.Linear(3, 1)
    ref.load_state_dict({'weight': w0, 'bias': b0})
    ((ref(x).squeeze(-1) - y)**2).mean().backward()

    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.cast_dtype == torch.bfloat16
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        pred = model(x).squeeze(-1)
        assert pred.dtype == torch.bfloat16
        loss = ((pred.float() - y)**2).mean()
    wrapper.backward(loss)
    grad = model.weight.grad.detach().clone()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # bf16 forward: close to, not equal to, the float32 gradient
    torch.testing.assert_close(grad, ref.weight.grad, rtol=0.05, atol=0.02)
    wrapper.step()
    # no loss scaling on CPU bf16: a plain SGD step with the unscaled grads
    torch.testing.assert_close(model.weight.detach(), w0 - 0.1 * grad)

    state = wrapper.state_dict()
    assert state['loss_scaler'] == {}
    wrapper.load_state_dict(state)

    assert AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        dtype='bfloat16').cast_dtype == torch.bfloat16
    with pytest.raises(UserError, match='only bfloat16.*optim_wrapper.dtype=float16'):
        AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        dtype='float16')


@pytest.mark.parametrize('mode', ['auto', 'bf16', 'fp32'])
def test_cpu_amp_runs_bf16_only_where_it_is_fast(monkeypatch, mode):
    """bf16 autocast only where the CPU has bf16 kernels (or when forced); float32 otherwise,
    with the requested dtype kept on the wrapper."""
    from mmengine.optim import AmpOptimWrapper
    from mmmixmae.utils import amp
    monkeypatch.setenv('MMMIXMAE_CPU_AMP', mode)
    model = nn.Linear(3, 1)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.cast_dtype == torch.bfloat16
    want_bf16 = mode == 'bf16' or (mode == 'auto' and amp.cpu_has_native_bf16())
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu') == want_bf16
        out = model(torch.randn(4, 3))
    assert out.dtype == (torch.bfloat16 if want_bf16 else torch.float32)
    assert amp.cpu_autocast_dtype(torch.bfloat16) == (torch.bfloat16 if want_bf16 else None)
    # only bfloat16 is subject to the choice
    assert amp.cpu_autocast_dtype(torch.float16) == torch.float16


def test_cpu_amp_env_value_is_checked(monkeypatch):
    from mmmixmae.utils import amp
    monkeypatch.setenv('MMMIXMAE_CPU_AMP', 'half')
    with pytest.raises(UserError, match="MMMIXMAE_CPU_AMP='half': use 'auto', 'bf16' or 'fp32'"):
        amp.cpu_autocast_dtype(torch.bfloat16)

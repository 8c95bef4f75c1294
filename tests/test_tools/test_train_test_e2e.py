"""tools/train.py and tools/test.py end to end on the toy regression config
(single process, CPU): the numbers they produce, not only that they ran."""
import pickle
import re

import pytest
import torch
from helpers.subprocesses import run_python
from helpers.tools import TEST, TRAIN
from helpers.tools import TOY_REGRESSION as TOY_CONFIG

import mmengine_toys
from mmmixmae.checkpoint import load_checkpoint_safely  # noqa: E402


@pytest.mark.slow  # two tool subprocesses
def test_train_then_test(tmp_path):
    work = tmp_path / 'work'
    proc = run_python([TRAIN, TOY_CONFIG, '--work-dir', work, '--cfg-options',
                     'train_cfg.max_iters=4'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = load_checkpoint_safely(work / 'params_before_rank0.pt')
    after = load_checkpoint_safely(work / 'params_after_rank0.pt')
    assert after['iter'] == 4 and after['world_size'] == 1
    assert after['wrapper'] == 'ToyRegressor'  # no DDP without a launcher

    x, y = mmengine_toys.toy_data(32)
    expected = mmengine_toys.sgd_reference(before['params'], x, y, lr=0.05, steps=4,
                             batch=4)
    for key, value in expected.items():
        assert not torch.equal(before['params'][key], after['params'][key])
        torch.testing.assert_close(after['params'][key].double(), value,
                                   rtol=1e-5, atol=1e-6)
    ckpt = load_checkpoint_safely(work / 'iter_4.pth')
    for key, value in after['params'].items():
        assert torch.equal(ckpt['state_dict'][key], value)

    out = tmp_path / 'preds.pkl'
    proc = run_python([TEST, TOY_CONFIG, work / 'iter_4.pth', '--out', out,
                     '--work-dir', tmp_path / 'test'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    xt, yt = mmengine_toys.toy_data(16, seed=1)
    w, b = after['params']['linear.weight'], after['params']['linear.bias']
    pred = (xt @ w.T).squeeze(-1) + b
    mse = float(((pred - yt)**2).mean())
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 16
    torch.testing.assert_close(torch.stack([d['pred'] for d in dumped]), pred)
    logged = re.findall(r'toy/mse: ([0-9.]+)', proc.stdout + proc.stderr)
    assert logged, proc.stdout[-2000:]
    assert abs(float(logged[-1]) - mse) <= 1e-4 * max(1.0, mse)


def test_train_amp_cpu_uses_bfloat16(tmp_path, monkeypatch):
    from mmmixmae.utils.cli import train_main
    # bf16 even where the CPU has no bf16 kernels (auto would compute in float32 there)
    monkeypatch.setenv('MMMIXMAE_CPU_AMP', 'bf16')
    model = train_main([
        str(TOY_CONFIG), '--amp', '--work-dir', str(tmp_path), '--cfg-options',
        'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'
    ])
    if not torch.cuda.is_available():
        assert model.last_pred_dtype == torch.bfloat16
    dumped = (tmp_path / 'toy_regression.py').read_text()
    assert "type='AmpOptimWrapper'" in dumped
    ckpt = load_checkpoint_safely(tmp_path / 'iter_2.pth')
    assert ckpt['meta']['iter'] == 2
    assert 'loss_scaler' in ckpt['optimizer']

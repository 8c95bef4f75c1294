"""Real mmengine Runner checkpoints load with weights_only=True: resume
(optimizer state, iteration, message hub / HistoryBuffer statistics) and
load_from."""
import io
import os
import subprocess
import sys
import uuid
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

from mmmixmae.checkpoint import load_checkpoint_safely
from mmmixmae.compat import apply_compat

import mmengine_toys  # noqa: E402,F401  (registers the toy components)

apply_compat()


def _runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=dict(type='ToyRegressor', in_dim=4),
        work_dir=str(work_dir),
        experiment_name=f'toy_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            dataset=dict(type='ToyRegressionDataset', length=32),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.02, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3],
                             gamma=0.5, by_epoch=False),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        log_level='WARNING',
        default_scope='mmengine',
        **kwargs)


def _params(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def _history(runner, key='train/loss'):
    logs, counts = runner.message_hub.get_scalar(key).data
    return logs.copy(), counts.copy()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """4 iterations, checkpoints at 2 and 4."""
    work = tmp_path_factory.mktemp('run4')
    runner = _runner(work, 4)
    runner.train()
    return dict(work=work, ckpt=work / 'iter_4.pth', params=_params(runner),
                loss=_history(runner),
                lr=_history(runner, 'train/lr'))


@pytest.mark.slow
def test_checkpoint_needs_compat_but_nothing_more(trained):
    ckpt = trained['ckpt']
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(ckpt)) == []
    with zipfile.ZipFile(ckpt) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith('data.pkl'))
        from torch._weights_only_unpickler import get_globals_in_pkl
        found = get_globals_in_pkl(io.BytesIO(zf.read(pkl)))
    # the statistics methods really travel as getattr(HistoryBuffer, ...)
    assert 'builtins.getattr' in found
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found

    # without mmmixmae.compat, torch >= 2.6 refuses the same file
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({str(ckpt)!r})\n'
            'except Exception as e:\n'
            '    print(type(e).__name__, e); sys.exit(3)\n')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert 'HistoryBuffer' in proc.stdout


def test_checkpoint_contents_round_trip(trained):
    ckpt = load_checkpoint_safely(trained['ckpt'])
    assert ckpt['meta']['iter'] == 4
    for key, value in trained['params'].items():
        assert torch.equal(ckpt['state_dict'][key], value)
    # momentum buffers of SGD are in the optimizer state
    assert len(ckpt['optimizer']['state']) == 2
    hub = ckpt['message_hub']
    hb = hub['log_scalars']['train/loss']
    assert isinstance(hb, HistoryBuffer)
    logs, counts = trained['loss']
    assert len(logs) == 4
    np.testing.assert_array_equal(hb.data[0], logs)
    np.testing.assert_array_equal(hb.data[1], counts)
    assert hb.mean() == pytest.approx(float(np.mean(logs)))
    assert hb.mean(2) == pytest.approx(float(np.mean(logs[-2:])))
    assert hb.min() == logs.min() and hb.max() == logs.max()
    assert hb.current() == logs[-1]
    for name in ('min', 'max', 'mean', 'current'):
        assert hb._statistics_methods[name] is getattr(HistoryBuffer, name)
    # lr went 0.02 -> 0.01 at iteration 3 (MultiStepLR), recorded per iter
    np.testing.assert_allclose(hub['log_scalars']['train/lr'].data[0],
                               [0.02, 0.02, 0.02, 0.01])


def test_resume_continues_exactly(trained, tmp_path):
    # resume=True without load_from: auto-resume from the latest checkpoint
    resumed = _runner(trained['work'], 6, resume=True,
                      custom_hooks=[dict(type='ParamDumpHook')])
    resumed.train()
    assert resumed.iter == 6
    # at before_train the checkpoint had been restored: iteration 4, its
    # weights, and its loss history (through HistoryBuffer's pickling)
    start = load_checkpoint_safely(trained['work'] / 'params_before_rank0.pt')
    assert start['iter'] == 4
    for key, value in trained['params'].items():
        assert torch.equal(start['params'][key], value)
    np.testing.assert_array_equal(start['loss_history'], trained['loss'][0])

    straight = _runner(tmp_path / 'run6', 6)
    straight.train()

    # same weights as an uninterrupted 6-iteration run: iteration count,
    # momentum buffers, LR schedule and data position were all restored
    for key, value in _params(straight).items():
        torch.testing.assert_close(_params(resumed)[key], value, rtol=0,
                                   atol=1e-7)
    # the resumed message hub starts with the saved history
    logs, counts = _history(resumed)
    assert len(logs) == 6
    np.testing.assert_array_equal(logs[:4], trained['loss'][0])
    np.testing.assert_allclose(logs, _history(straight)[0], rtol=1e-6)
    np.testing.assert_allclose(
        _history(resumed, 'train/lr')[0], [0.02, 0.02, 0.02, .01, .01, .01])


def test_load_from_loads_weights_only(trained, tmp_path):
    runner = _runner(tmp_path / 'load', 4, load_from=str(trained['ckpt']))
    fresh = _params(runner)
    assert any(not torch.equal(fresh[k], v)
               for k, v in trained['params'].items())
    runner.load_or_resume()
    assert runner.iter == 0
    for key, value in trained['params'].items():
        assert torch.equal(runner.model.state_dict()[key], value)

"""NaN/Inf loss stops training naming the iteration and the last good checkpoint, which
stays intact and resumable; an fp16 loss-scale collapse is reported the same way (real
torch GradScaler on CPU); bf16 falls back to fp16 where it is not supported."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from rel_helpers import TOY_CFG, derived_config, finish, run_train, start_train

import reliability_testkit as kit
from mmmixmae.checkpoint import load_checkpoint_safely
from mmmixmae.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from mmmixmae.engine.hooks import numerics

IMPORTS = dict(imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms',
                        'reliability_testkit'], allow_failed_imports=False)
GUARDED = [dict(type='ExactResumeHook'), dict(type='RankMeanLogVarsHook'),
           dict(type='NonFiniteLossHook'), dict(type='RecordBatchHook')]


def _toy(tmp_path, name, hooks, iters=8):
    return derived_config(
        tmp_path / name, TOY_CFG, hooks, custom_imports=IMPORTS,
        train_cfg=dict(type='ResumableIterBasedTrainLoop', max_iters=iters, _delete_=True),
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(type='AtomicCheckpointHook', interval=3,
                                           by_epoch=False, max_keep_ckpts=-1)))


@pytest.mark.slow
def test_nan_and_inf_loss_stop_with_iteration_and_last_checkpoint(tmp_path, photo_folder):
    opts = [f'train_dataloader.dataset.data_root={photo_folder}']
    nan_cfg = _toy(tmp_path, 'nan.py', GUARDED + [dict(type='PoisonLossHook', at_iter=5,
                                                        value='nan')])
    inf_cfg = _toy(tmp_path, 'inf.py', GUARDED + [dict(type='PoisonLossHook', at_iter=2,
                                                        value='inf')])
    nan_dir, inf_dir = tmp_path / 'nan', tmp_path / 'inf'
    (rc_nan, out_nan), (rc_inf, out_inf) = [
        finish(p) for p in (start_train(nan_cfg, nan_dir, cfg_options=opts),
                            start_train(inf_cfg, inf_dir, cfg_options=opts))]

    last = nan_dir / 'iter_3.pth'
    assert rc_nan == 1, out_nan[-3000:]
    expected = (f'NonFiniteLossError: loss became NaN at iteration 5 (epoch 1); training '
                f'stopped, the last good checkpoint is {last} (resume with --resume {last})')
    assert expected in out_nan
    # stopped at iteration 5: nothing trained or saved after it
    assert [r['iter'] for r in kit.read_records(nan_dir / 'records_rank0.jsonl')] == \
        [1, 2, 3, 4]
    assert sorted(p.name for p in nan_dir.glob('*.pth')) == ['iter_3.pth']
    assert (nan_dir / 'last_checkpoint').read_text() == str(last)
    ckpt = load_checkpoint_safely(last)
    assert ckpt['meta']['iter'] == 3
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())

    assert rc_inf == 1, out_inf[-3000:]
    assert ('NonFiniteLossError: loss became Inf at iteration 2 (epoch 1); training stopped, '
            'no checkpoint has been saved yet') in out_inf
    assert not list(inf_dir.glob('*.pth'))

    # the checkpoint is intact and resumable: the resumed run redoes iteration 4 exactly
    # as the poisoned run did before the NaN, then trains to the end with finite losses
    rc, out = run_train(_toy(tmp_path, 'clean.py', GUARDED), nan_dir, '--resume',
                        cfg_options=opts)
    assert rc == 0, out[-3000:]
    records = kit.read_records(nan_dir / 'records_rank0.jsonl')
    assert [r['iter'] for r in records] == [1, 2, 3, 4, 4, 5, 6, 7, 8]
    for key in ('samples', 'digest', 'mask', 'loss'):
        assert records[3][key] == records[4][key], key
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in records)
    assert load_checkpoint_safely(nan_dir / 'iter_8.pth')['meta']['iter'] == 8


def _amp_runner(tmp_path, photo_folder, name, guard, from_iter=3, iters=12):
    cfg = Config.fromfile(str(TOY_CFG))
    cfg.custom_imports = IMPORTS
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = name
    cfg.train_dataloader.dataset.data_root = photo_folder
    cfg.train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=iters)
    cfg.optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale='dynamic',
                             optimizer=dict(type='AdamW', lr=1e-3))
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=2,
                                        by_epoch=False, max_keep_ckpts=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.custom_hooks = [dict(type='CPUGradScalerHook', init_scale=16.0), guard,
                        dict(type='InfGradHook', from_iter=from_iter)]
    return Runner.from_cfg(cfg)


def test_fp16_loss_scale_collapse_stops_training(tmp_path, photo_folder):
    """A real dynamic torch.amp.GradScaler on CPU (the AmpOptimWrapper computes in
    bfloat16 here: mmengine's CPU autocast refuses float16; the scaler logic is the same)
    halves its scale on each overflowing step; below min_loss_scale training stops."""
    runner = _amp_runner(tmp_path, photo_folder, 'collapse',
                         dict(type='NonFiniteLossHook', min_loss_scale=1.0))
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    # scale 16 -> 8 (iter 3) -> 4 -> 2 -> 1 -> 0.5 at iteration 7
    last = osp.join(runner.work_dir, 'iter_6.pth')
    assert str(info.value) == (
        'the fp16 loss scale collapsed to 0.5 (below min_loss_scale=1) after 5 consecutive '
        'skipped optimizer steps with overflowing gradients at iteration 7 (epoch 1); '
        f'training stopped, the last good checkpoint is {last} (resume with --resume '
        f'{last})')
    assert info.value.iteration == 7 and info.value.last_checkpoint == last
    assert runner.optim_wrapper.loss_scaler.get_scale() == 0.5
    # the scaler really skipped the steps: the weights are those after iteration 2
    at2 = load_checkpoint_safely(osp.join(runner.work_dir, 'iter_2.pth'))['state_dict']
    model = runner.model.state_dict()
    assert all(torch.equal(at2[k], model[k]) for k in at2)
    assert not osp.exists(osp.join(runner.work_dir, 'iter_8.pth'))


def test_many_consecutive_skipped_steps_stop_training(tmp_path, photo_folder):
    runner = _amp_runner(tmp_path, photo_folder, 'skips',
                         dict(type='NonFiniteLossHook', min_loss_scale=1e-6,
                              max_skipped_steps=3))
    with pytest.raises(NonFiniteLossError, match=r'^3 consecutive optimizer steps were '
                       r'skipped because the fp16 gradients overflowed \(loss scale now 2\) '
                       r'at iteration 5 \(epoch 1\)'):
        runner.train()


def test_bf16_falls_back_to_fp16_where_unsupported(tmp_path, photo_folder, monkeypatch):
    cfg = Config.fromfile(str(TOY_CFG))
    cfg.work_dir = str(tmp_path / 'bf16')
    cfg.experiment_name = 'bf16_fallback'
    cfg.train_dataloader.dataset.data_root = photo_folder
    cfg.optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                             optimizer=dict(type='AdamW', lr=1e-3))
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    # the base config's hook list carries the guard
    hook = next(h for h in runner.hooks if isinstance(h, NonFiniteLossHook))

    hook.before_run(runner)  # CPU supports bf16: nothing changes
    assert runner.optim_wrapper.cast_dtype == torch.bfloat16
    assert not runner.optim_wrapper.loss_scaler.is_enabled()  # compat: no scaling for bf16

    monkeypatch.setattr(numerics, 'bf16_supported', lambda device: False)
    hook.before_run(runner)
    assert runner.optim_wrapper.cast_dtype == torch.float16
    scaler = runner.optim_wrapper.loss_scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    log = open(runner.logger.log_file).read()
    assert ('cpu does not support bfloat16 autocast: falling back to float16 with dynamic '
            'loss scaling') in log


def test_guard_arguments_are_checked():
    with pytest.raises(ValueError, match='min_loss_scale'):
        NonFiniteLossHook(min_loss_scale=0)
    with pytest.raises(ValueError, match='max_skipped_steps'):
        NonFiniteLossHook(max_skipped_steps=0)
    assert copy.deepcopy(NonFiniteLossHook()).max_skipped_steps == 20

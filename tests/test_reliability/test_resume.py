"""Crash (SIGKILL of a real tools/train.py process) mid-epoch, resume, compare bit for bit
with an uninterrupted run -- pretraining and layer-decay fine-tuning."""
import os.path as osp
import signal

import pytest
import torch
from rel_helpers import (BASE_HOOKS, FINETUNE_CFG, PRETRAIN_CFG, derived_config, finish,
                      run_train, start_train)

import reliability_testkit as kit
from mmmixmae.checkpoint import load_checkpoint_safely

KILL_AT = 7  # 1-based iteration after which the process is SIGKILLed (epoch 2, batch 3/4)
LAST_GOOD = 6  # checkpoints every 3 iterations


def _assert_tensors_equal(a, b, what):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), what
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{what}: keys {sorted(set(a) ^ set(b))}'
        for k in a:
            _assert_tensors_equal(a[k], b[k], f'{what}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_tensors_equal(x, y, f'{what}[{i}]')
    else:
        assert a == b, f'{what}: {a!r} != {b!r}'


def _crash_and_resume(tmp_path, config, data_root):
    """Uninterrupted run, killed run, resume of the killed run; checks and returns the
    uninterrupted run's final checkpoint and its work dir."""
    opts = [f'train_dataloader.dataset.data_root={data_root}']
    killed_cfg = derived_config(tmp_path / 'killed.py', config,
                                BASE_HOOKS + [dict(type='SigkillHook', at_iter=KILL_AT)])
    full, killed = tmp_path / 'uninterrupted', tmp_path / 'killed'
    procs = [start_train(config, full, cfg_options=opts),
             start_train(killed_cfg, killed, cfg_options=opts)]
    (rc_full, log_full), (rc_killed, log_killed) = [finish(p) for p in procs]
    assert rc_full == 0, log_full[-4000:]
    assert rc_killed == -signal.SIGKILL, log_killed[-4000:]
    # the kill came after iteration 7, i.e. after the checkpoint of iteration 6
    killed_records = kit.read_records(killed / 'records_rank0.jsonl')
    assert [r['iter'] for r in killed_records] == list(range(1, KILL_AT + 1))
    assert (killed / 'last_checkpoint').read_text() == str(killed / f'iter_{LAST_GOOD}.pth')
    assert not (killed / 'iter_9.pth').exists()

    rc, log = run_train(config, killed, '--resume', cfg_options=opts)  # latest checkpoint
    assert rc == 0, log[-4000:]
    assert f'resumed epoch: 1, iter: {LAST_GOOD}' in log
    assert f'Resuming epoch 2 at batch 3/4' in log

    ref = {r['iter']: r for r in kit.read_records(full / 'records_rank0.jsonl')}
    got = kit.read_records(killed / 'records_rank0.jsonl')[KILL_AT:]  # the resumed run
    # it continues the epoch (batch 3 of epoch 2 = iteration 7), it does not restart it
    assert [(r['iter'], r['epoch'], r['batch_idx']) for r in got] == \
        [(i, ref[i]['epoch'], ref[i]['batch_idx']) for i in range(LAST_GOOD + 1, 13)]
    assert got[0]['batch_idx'] == 2 and got[0]['epoch'] == 1
    for r in got:  # same samples, same augmented pixels, same mask, same loss and lr
        for key in ('samples', 'digest', 'mask', 'loss', 'lr'):
            assert r[key] == ref[r['iter']][key], (r['iter'], key)

    a = load_checkpoint_safely(full / 'iter_12.pth')
    b = load_checkpoint_safely(killed / 'iter_12.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 12
    assert a['meta']['epoch'] == b['meta']['epoch']
    _assert_tensors_equal(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_tensors_equal(a['optimizer'], b['optimizer'], 'optimizer')
    _assert_tensors_equal(a['param_schedulers'], b['param_schedulers'], 'param_schedulers')
    _assert_tensors_equal(a['rng_state'], b['rng_state'], 'rng_state')
    # training did move the weights, so equality is not trivially true
    first = load_checkpoint_safely(full / 'iter_3.pth')
    assert any(not torch.equal(first['state_dict'][k], v)
               for k, v in a['state_dict'].items() if v.is_floating_point())
    return a, full


@pytest.fixture(scope='module')
def pretrain_crash(tmp_path_factory, photo_folder):
    return _crash_and_resume(tmp_path_factory.mktemp('pretrain'), PRETRAIN_CFG, photo_folder)


@pytest.mark.slow
def test_pretraining_sigkill_mid_epoch_resumes_bit_exactly(pretrain_crash):
    ckpt, _ = pretrain_crash  # the comparisons are made in _crash_and_resume
    assert len(ckpt['rng_state']) == 1  # one rank
    assert ckpt['rng_state'][0]['python']['internal'].shape == (625, )


@pytest.mark.slow
def test_finetuning_with_layer_decay_sigkill_mid_epoch_resumes_bit_exactly(
        tmp_path, labelled_folder):
    ckpt, _ = _crash_and_resume(tmp_path, FINETUNE_CFG, labelled_folder)
    groups = ckpt['optimizer']['param_groups']
    # layer-wise decay is in effect: the stem's lr is rate^(num_layers - 1) times the
    # undecayed lr, and a layer closer to the head never has a smaller lr
    stem = next(g for g in groups if g['param_name'] == 'backbone.patch_embed.proj.weight')
    num_layers = sum([1, 1, 2, 1]) + 2
    assert stem['lr_scale'] == pytest.approx(0.7**(num_layers - 1))
    assert len({round(g['lr_scale'], 12) for g in groups}) >= num_layers - 1
    by_layer = sorted(groups, key=lambda g: g['layer_id'])
    assert all(a['lr'] <= b['lr'] for a, b in zip(by_layer, by_layer[1:]))
    assert by_layer[0]['lr'] < by_layer[-1]['lr']


@pytest.mark.slow
def test_stock_mmengine_loop_restarts_the_epoch(tmp_path, photo_folder, pretrain_crash):
    """What mmengine 0.10.7 alone does (why ResumableEpochBasedTrainLoop and
    ExactResumeHook exist): the resumed epoch starts again at batch 1, the run trains
    14 iterations instead of 12, and the masks after the resume differ."""
    opts = [f'train_dataloader.dataset.data_root={photo_folder}']
    _, ref_dir = pretrain_crash
    stock = derived_config(tmp_path / 'stock.py', PRETRAIN_CFG, [dict(type='RecordBatchHook')],
                           train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=3,
                                          _delete_=True))
    work = tmp_path / 'stock'
    work.mkdir()
    ckpt = work / 'iter_6.pth'
    ckpt.write_bytes((ref_dir / 'iter_6.pth').read_bytes())
    rc, log = run_train(stock, work, '--resume', ckpt, cfg_options=opts)
    assert rc == 0, log[-3000:]
    ref = {r['iter']: r for r in kit.read_records(ref_dir / 'records_rank0.jsonl')}
    got = kit.read_records(work / 'records_rank0.jsonl')
    assert [r['iter'] for r in got] == list(range(7, 15))
    assert got[0]['batch_idx'] == 0 and got[0]['samples'] == ref[5]['samples']
    assert any(r['mask'] != ref[r['iter']]['mask'] for r in got if r['iter'] in ref)
    assert osp.exists(work / 'iter_12.pth')  # saved, but 2 iterations short of the end

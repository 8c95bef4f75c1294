"""Two CPU ranks under torchrun (gloo): identical parameters, the logged loss is the mean
over ranks, an odd local batch works, each rank draws its own mask, and a SIGKILL of the
whole job followed by --resume ends bit-identical to the uninterrupted job."""
import json
import signal
import subprocess
import sys

import pytest
import torch
from helpers.subprocesses import free_port
from rel_helpers import REPO, TOY_CFG, TRAIN, derived_config, train_env

import reliability_testkit as kit
from mmmixmae.checkpoint import load_checkpoint_safely

HOOKS = [dict(type='LocalLossHook'), dict(type='RankMeanLogVarsHook'),
         dict(type='ExactResumeHook'), dict(type='NonFiniteLossHook'),
         dict(type='RecordBatchHook'), dict(type='DumpParamsHook')]
ITERS = 6


def _torchrun(config, work, *args, data_root, timeout=400):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={free_port()}', str(TRAIN), str(config), '--launcher', 'pytorch',
           '--work-dir', str(work), *map(str, args), '--cfg-options',
           f'train_dataloader.dataset.data_root={data_root}']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=train_env(threads=1), cwd=str(REPO))
    return proc.returncode, proc.stdout + proc.stderr


def _config(tmp_path, name, hooks):
    # odd local batch (3 per rank), InfiniteSampler, checkpoints every 3 iterations,
    # drop path and a random mixing ratio so that every rank's RNG stream matters
    return derived_config(
        tmp_path / name, TOY_CFG, hooks,
        custom_imports=dict(imports=['mmmixmae', 'mmmixmae.engine',
                                     'mmmixmae.datasets.transforms', 'reliability_testkit'],
                            allow_failed_imports=False),
        model=dict(range_mask_ratio=0.2, backbone=dict(drop_path_rate=0.1)),
        train_dataloader=dict(batch_size=3),
        train_cfg=dict(type='ResumableIterBasedTrainLoop', max_iters=ITERS, _delete_=True),
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(type='AtomicCheckpointHook', interval=3,
                                           by_epoch=False, max_keep_ckpts=-1)),
        log_processor=dict(window_size=1),
        randomness=dict(seed=11, diff_rank_seed=True, deterministic=True))


def _logged_losses(work):
    scalars = sorted(work.glob('*/vis_data/scalars.json'))
    out = {}
    for path in scalars:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                out[rec['iter']] = rec['loss']
    return out


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory, photo_folder):
    tmp = tmp_path_factory.mktemp('ddp')
    work = tmp / 'full'
    rc, out = _torchrun(_config(tmp, 'full.py', HOOKS), work, data_root=photo_folder)
    assert rc == 0, out[-6000:]
    return tmp, work


@pytest.mark.slow
def test_ranks_identical_loss_is_rank_mean_odd_batch(ddp_run):
    _, work = ddp_run
    before = [load_checkpoint_safely(work / f'params_before_rank{r}.pt') for r in (0, 1)]
    after = [load_checkpoint_safely(work / f'params_after_rank{r}.pt') for r in (0, 1)]
    assert [d['world_size'] for d in after] == [2, 2] and after[0]['iter'] == ITERS
    moved = 0
    for key, value in after[0]['state'].items():
        assert torch.equal(value, after[1]['state'][key]), key  # bit-identical ranks
        assert torch.equal(before[0]['state'][key], before[1]['state'][key]), key
        moved += not torch.equal(value, before[0]['state'][key])
    assert moved > 10  # it trained

    records = [kit.read_records(work / f'records_rank{r}.jsonl') for r in (0, 1)]
    local = [kit.read_records(work / f'local_loss_rank{r}.jsonl') for r in (0, 1)]
    logged = _logged_losses(work)
    assert sorted(logged) == list(range(1, ITERS + 1))
    for i in range(ITERS):
        # each rank trained an odd local batch of 3 (the middle sample is its own partner)
        assert records[0][i]['batch_size'] == records[1][i]['batch_size'] == 3
        assert not set(records[0][i]['samples']) & set(records[1][i]['samples'])
        l0, l1 = local[0][i]['loss'], local[1][i]['loss']
        mean = float((torch.tensor(l0) + torch.tensor(l1)) / 2)
        # what every later hook sees, what the message hub holds, what the log shows
        assert records[0][i]['loss'] == records[1][i]['loss'] == pytest.approx(mean, abs=1e-7)
        assert records[0][i]['hub_loss'] == pytest.approx(mean, abs=1e-7)
        assert logged[i + 1] == pytest.approx(mean, abs=1e-4 * abs(mean))  # 4 digits
    # not rank 0's own loss (mmengine's default)
    assert any(abs(a['loss'] - b['loss']) > 1e-4 for a, b in zip(*local))
    # each rank draws its own mixing mask from its own RNG stream (diff_rank_seed)
    assert any(a['mask'] != b['mask'] for a, b in zip(*records))


@pytest.mark.slow
def test_ddp_sigkill_then_resume_is_bit_identical(ddp_run, photo_folder):
    tmp, full = ddp_run
    killed = tmp / 'killed'
    cfg = _config(tmp, 'killed.py', HOOKS + [dict(type='SigkillHook', at_iter=4)])
    rc, out = _torchrun(cfg, killed, data_root=photo_folder)
    assert rc != 0 and ('SIGKILL' in out or 'Signal 9' in out or str(-signal.SIGKILL) in out), \
        out[-4000:]
    assert (killed / 'last_checkpoint').read_text() == str(killed / 'iter_3.pth')
    ckpt3 = load_checkpoint_safely(killed / 'iter_3.pth')
    assert len(ckpt3['rng_state']) == 2  # both ranks' generators
    assert not torch.equal(ckpt3['rng_state'][0]['torch_cpu'], ckpt3['rng_state'][1]['torch_cpu'])

    rc, out = _torchrun(_config(tmp, 'resume.py', HOOKS), killed, '--resume',
                        data_root=photo_folder)
    assert rc == 0, out[-6000:]
    for r in (0, 1):
        a = load_checkpoint_safely(full / f'params_after_rank{r}.pt')['state']
        b = load_checkpoint_safely(killed / f'params_after_rank{r}.pt')['state']
        for key in a:
            assert torch.equal(a[key], b[key]), (r, key)
        ref = {x['iter']: x for x in kit.read_records(full / f'records_rank{r}.jsonl')}
        got = kit.read_records(killed / f'records_rank{r}.jsonl')[4:]  # after the resume
        assert [x['iter'] for x in got] == [4, 5, 6]
        for x in got:
            for key in ('samples', 'digest', 'mask', 'loss'):
                assert x[key] == ref[x['iter']][key], (r, x['iter'], key)
    fa = load_checkpoint_safely(full / 'iter_6.pth')
    fb = load_checkpoint_safely(killed / 'iter_6.pth')
    for key in ('exp_avg', 'exp_avg_sq'):
        for pid, st in fa['optimizer']['state'].items():
            assert torch.equal(st[key], fb['optimizer']['state'][pid][key])

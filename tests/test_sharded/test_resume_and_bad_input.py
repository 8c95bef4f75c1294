"""The shipped CPU FSDP toy config through tools/dist_train.sh: a sharded checkpoint resumes
to bit-identical weights; a sharded config without a launcher, a checkpoint of another number
of ranks and a missing shard stop at start naming the setting or the file.  (A different wrap
policy: tests/test_sharded/test_fsdp_vs_ddp.py.)"""
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from _sharded_env import REPO, free_port, sub_env

CONFIG = 'configs/mixmae/mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu.py'


def dist_train(work_dir, nproc: int, *extra: str, timeout: int = 400):
    env = sub_env()
    env['PORT'] = str(free_port())
    env['PYTHON'] = sys.executable
    return subprocess.run(['bash', 'tools/dist_train.sh', CONFIG, str(nproc), '--work-dir',
                           str(work_dir), *extra], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def shards(folder) -> list:
    from mmmixmae.checkpoint import read_checkpoint  # weights-only, mmmixmae's allowlist
    return [read_checkpoint(osp.join(folder, f'rank{r}.pth')) for r in (0, 1)]


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    """8 iterations on 2 ranks: iter_4.pth/ and iter_8.pth/ (rank0.pth, rank1.pth)."""
    work = tmp_path_factory.mktemp('fsdp_full_run')
    proc = dist_train(work, 2)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return work


def _flat(obj, prefix=''):
    """Every tensor of a nested checkpoint entry, by path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f'{prefix}.{k}')
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _flat(v, f'{prefix}.{i}')


@pytest.mark.slow
def test_sharded_resume_is_bit_identical(full_run, tmp_path):
    proc = dist_train(tmp_path / 'resumed', 2, '--resume', str(full_run / 'iter_4.pth'))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    straight, resumed = shards(full_run / 'iter_8.pth'), shards(tmp_path / 'resumed' /
                                                                'iter_8.pth')
    at4 = shards(full_run / 'iter_4.pth')
    for rank in (0, 1):
        assert straight[rank]['meta']['iter'] == resumed[rank]['meta']['iter'] == 8
        for key in ('state_dict', 'optimizer'):
            a, b = dict(_flat(straight[rank][key])), dict(_flat(resumed[rank][key]))
            assert len(a) > 20 and list(a) == list(b)
            assert [k for k in a if not torch.equal(a[k], b[k])] == [], (rank, key)
        before = dict(_flat(at4[rank]['state_dict']))
        moved = [k for k, v in dict(_flat(straight[rank]['state_dict'])).items()
                 if v.is_floating_point() and not torch.equal(v, before[k])]
        assert len(moved) > 10  # iterations 5-8 changed the weights
    # the consolidated files agree too (the tool of docs/en/pretrain.md, "Scaling up")
    from mmmixmae.checkpoint.sharded import consolidate_sharded
    a, _ = consolidate_sharded(str(full_run / 'iter_8.pth'))
    b, _ = consolidate_sharded(str(tmp_path / 'resumed' / 'iter_8.pth'))
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_other_number_of_ranks_is_refused(full_run, tmp_path):
    proc = dist_train(tmp_path / 'one', 1, '--resume', str(full_run / 'iter_4.pth'))
    assert proc.returncode != 0
    assert f'sharded checkpoint {full_run / "iter_4.pth"} has 2 shards (written by 2 ranks) ' \
        'but this run has 1' in proc.stdout + proc.stderr
    assert not (tmp_path / 'one' / 'iter_8.pth').exists()


@pytest.mark.slow
def test_missing_shard_is_refused(full_run, tmp_path):
    broken = tmp_path / 'iter_4.pth'
    shutil.copytree(full_run / 'iter_4.pth', broken)
    (broken / 'rank1.pth').unlink()
    proc = dist_train(tmp_path / 'w', 2, '--resume', str(broken))
    assert proc.returncode != 0
    assert f'sharded checkpoint {broken}: shard(s) rank1.pth missing for this run of 2 ranks' \
        in proc.stdout + proc.stderr
    assert not (tmp_path / 'w' / 'iter_8.pth').exists()


@pytest.mark.slow
def test_sharded_config_without_launcher_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                           str(tmp_path / 'w')], cwd=REPO, env=sub_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "strategy=FSDPStrategy (runner_type='FlexibleRunner')" in out
    assert "launcher='none'" in out and 'tools/dist_train.sh CONFIG N' in out

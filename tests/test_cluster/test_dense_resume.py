"""SIGKILL mid-run of the CPU toy Mask R-CNN and UperNet configs, then --resume: the final
weights and optimizer state are bit-identical to an uninterrupted run (tools/train.py, i.e.
mmdet's and mmseg's Runners with the configs' resumable loop and reliability hooks)."""
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers.subprocesses import scrubbed_env

from mmmixmae.checkpoint import load_checkpoint_safely

ITERS, INTERVAL = 24, 8
CONFIGS = {
    'mask_rcnn': 'configs/mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py',
    'upernet': 'configs/upernet/upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py',
}


def train_cmd(repo, config, work_dir, *extra):
    return [sys.executable, osp.join(repo, 'tools', 'train.py'), osp.join(repo, config),
            '--work-dir', str(work_dir), '--cfg-options',
            'model.backbone.init_cfg=None',  # random backbone: this test is about resuming
            f'train_cfg.max_iters={ITERS}', f'default_hooks.checkpoint.interval={INTERVAL}',
            'default_hooks.checkpoint.max_keep_ckpts=4', 'default_hooks.logger.interval=1',
            *extra]


def env_for(shared_data):
    return dict(scrubbed_env(threads=1), MMMIXMAE_DATA=shared_data, PYTHONWARNINGS='ignore')


def run(cmd, env, log):
    with open(log, 'w') as f:
        done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=400)
    assert done.returncode == 0, open(log).read()[-3000:]


def kill_after_first_checkpoint(cmd, env, work_dir, log):
    """Start training, SIGKILL it as soon as iter_{INTERVAL}.pth is complete; return the
    iteration of the last complete checkpoint at the kill."""
    with open(log, 'w') as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 400
        last = osp.join(work_dir, 'last_checkpoint')
        while time.time() < deadline and proc.poll() is None:
            if osp.isfile(last) and open(last).read().strip().endswith(f'iter_{INTERVAL}.pth'):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f'run was not killed mid-way (rc={proc.returncode})\n' + open(log).read()[-3000:])
    assert not osp.exists(osp.join(work_dir, f'iter_{ITERS}.pth'))
    return int(open(last).read().strip().rsplit('_', 1)[1].split('.')[0])


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_sigkill_then_resume_is_bit_identical(repo, shared_data, tmp_path, name):
    env = env_for(shared_data)
    ref, crash = tmp_path / 'ref', tmp_path / 'crash'
    run(train_cmd(repo, CONFIGS[name], ref), env, tmp_path / 'ref.log')
    at = kill_after_first_checkpoint(train_cmd(repo, CONFIGS[name], crash), env, str(crash),
                                     tmp_path / 'crash.log')
    assert at == INTERVAL
    run(train_cmd(repo, CONFIGS[name], crash, '--resume'), env, tmp_path / 'resume.log')
    resumed_log = open(tmp_path / 'resume.log').read()
    assert f'resumed epoch: 0, iter: {INTERVAL}' in resumed_log

    a = load_checkpoint_safely(str(ref / f'iter_{ITERS}.pth'), 'cpu')
    b = load_checkpoint_safely(str(crash / f'iter_{ITERS}.pth'), 'cpu')
    assert a['meta']['iter'] == b['meta']['iter'] == ITERS
    assert a['state_dict'].keys() == b['state_dict'].keys() and len(a['state_dict']) > 50
    differing = [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k],
                                                               b['state_dict'][k])]
    assert differing == []
    # the weights moved: this is not two copies of the initialisation
    first = load_checkpoint_safely(str(ref / f'iter_{INTERVAL}.pth'), 'cpu')
    moved = [k for k in a['state_dict'] if a['state_dict'][k].is_floating_point()
             and not torch.equal(a['state_dict'][k], first['state_dict'][k])]
    assert len(moved) > 0.5 * len(a['state_dict'])
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    assert sa.keys() == sb.keys()
    for k in sa:
        for field in ('exp_avg', 'exp_avg_sq', 'step'):
            assert torch.equal(torch.as_tensor(sa[k][field]), torch.as_tensor(sb[k][field]))

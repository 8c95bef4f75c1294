"""Two-process CPU training through tools/train.py --launcher pytorch
(torch.distributed.run, gloo via mmmixmae.compat)."""
import subprocess
import sys

import pytest
import torch

from helpers.subprocesses import REPO, free_port, scrubbed_env
from helpers.tools import TOY_REGRESSION as TOY_CONFIG
from helpers.tools import TRAIN

import mmengine_toys
from mmmixmae.checkpoint import load_checkpoint_safely


@pytest.mark.slow
def test_two_process_cpu_training(tmp_path):
    work = tmp_path / 'work'
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={free_port()}', str(TRAIN), str(TOY_CONFIG),
        '--launcher', 'pytorch', '--work-dir', str(work)
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=scrubbed_env(threads=1), cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    dumps = {(stage, rank): load_checkpoint_safely(
        work / f'params_{stage}_rank{rank}.pt')
        for stage in ('before', 'after') for rank in (0, 1)}
    for (stage, rank), dump in dumps.items():
        assert dump['rank'] == rank and dump['world_size'] == 2
        # the config asks for nothing: mmengine's default nccl where CUDA is available,
        # gloo (mmmixmae.compat.init_dist) where it is not
        assert dump['backend'] == ('nccl' if torch.cuda.is_available() else 'gloo')
        assert dump['wrapper'] == 'MMDistributedDataParallel'
    assert dumps['after', 0]['iter'] == 3

    before = dumps['before', 0]['params']
    after0, after1 = dumps['after', 0]['params'], dumps['after', 1]['params']
    for key in before:
        assert torch.equal(before[key], dumps['before', 1]['params'][key])
        assert torch.equal(after0[key], after1[key]), key  # bit-identical
        assert not torch.equal(before[key], after0[key])  # it trained

    # DDP averages the two ranks' gradients: 3 SGD steps on the global
    # batch of 8 (DefaultSampler interleaves: rank r gets samples r, r+2, ..)
    x, y = mmengine_toys.toy_data(32)
    expected = mmengine_toys.sgd_reference(before, x, y, lr=0.05, steps=3, batch=8)
    for key, value in expected.items():
        torch.testing.assert_close(after0[key].double(), value, rtol=1e-5,
                                   atol=1e-6)

    ckpt = load_checkpoint_safely(work / 'iter_3.pth')
    for key, value in after0.items():
        assert torch.equal(ckpt['state_dict'][key], value)

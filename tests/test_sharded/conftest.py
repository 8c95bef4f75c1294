"""The 2-rank FSDP run shared by the tests of this folder (one launch per session)."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from _sharded_env import HERE, free_port, sub_env


@pytest.fixture(scope='session')
def fsdp_run(tmp_path_factory):
    """``(out_dir, results)`` of ``fsdp_worker.py`` on 2 gloo ranks: ``out_dir`` holds
    ``sharded.pth/`` (rank0.pth, rank1.pth after 3 FSDP steps), ``fsdp_full.pth`` (the same
    weights as FSDP's full state dict) and ``results.pt``."""
    out = tmp_path_factory.mktemp('fsdp')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', osp.join(HERE, 'fsdp_worker.py'), str(out)],
        env=sub_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, torch.load(out / 'results.pt')

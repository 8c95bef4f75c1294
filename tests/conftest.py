"""Shared fixtures.  Real sample data comes from $MMMIXMAE_DATA (default ../shared/data)."""
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def data_root() -> str:
    return os.environ.get('MMMIXMAE_DATA', osp.join(REPO_ROOT, '..', 'shared', 'data'))


@pytest.fixture(scope='session')
def shared_data() -> str:
    """The real sample data folder; skipped when absent, an error under CI=true."""
    root = osp.abspath(data_root())
    if not osp.isdir(root):
        msg = f'real sample data not found at {root} (set MMMIXMAE_DATA)'
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
    yield

import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from dense_helpers import pretrained_toy_checkpoint  # noqa: E402


@pytest.fixture(scope='session')
def mixmae_toy_pretrained(shared_data, tmp_path_factory):
    """The demo backbone pretrained with MixMAE on the sample photos (once per session)."""
    return pretrained_toy_checkpoint(str(tmp_path_factory.getbasetemp()), shared_data)

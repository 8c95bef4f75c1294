"""Fixtures of the tools/ tests."""
import pytest
import torch
from helpers.subprocesses import REPO

#: the toy MixMAE pretraining config (tiny encoder, 64 px) the analysis and visualisation
#: tools are run with
TOY_MIXMAE = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory):
    """A Runner-style checkpoint of the toy MixMAE (fixed random weights, seed 0)."""
    from mmmixmae.apis.common import build_model, load_tool_config
    torch.manual_seed(0)
    model = build_model(load_tool_config(str(TOY_MIXMAE)))
    path = tmp_path_factory.mktemp('ckpt') / 'toy.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path

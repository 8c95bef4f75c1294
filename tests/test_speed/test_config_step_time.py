"""tools/benchmarks/config_step_time.py: side-by-side step times of pretraining configs."""
from pathlib import Path

import pytest
import torch
from helpers.tools import TOY_REGRESSION, load_tool

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool('benchmarks/config_step_time')


def test_times_every_config_and_trains(tool, capsys):
    res = tool.main([str(TOY), str(TOY), '--batch', '2', '--steps', '2', '--warmup', '1'])
    assert res['img'] == 64 and res['batch'] == 2 and res['steps'] == 2
    # two entries of one name collapse in the report: the same file twice is one row
    assert list(res['step_s']) == [TOY.name]
    assert res['ratio_to_first'][TOY.name] == 1.0
    assert res['step_s'][TOY.name] > 0
    assert '"step_s"' in capsys.readouterr().out


def test_one_step_updates_the_weights(tool):
    model = tool.build_pretrainer(str(TOY))
    assert model.training
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.backbone.patch_embed.proj.weight.detach().clone()
    x = torch.randn(2, 3, 64, 64)
    seconds = tool.one_step(model, opt, x, seed=0)
    assert seconds > 0
    assert not torch.equal(before, model.backbone.patch_embed.proj.weight)
    # the step leaves no gradients behind (set_to_none)
    assert all(p.grad is None for p in model.parameters())


def test_refuses_what_it_cannot_time(tool, capsys):
    from mmmixmae.apis.common import run_tool

    def err(argv):
        with pytest.raises(SystemExit) as exc:
            run_tool(tool.main, prog='config_step_time.py')(argv)
        assert exc.value.code == 2
        return capsys.readouterr().err

    assert 'is not a MixMAE pretrainer' in err([str(TOY_REGRESSION), '--steps', '1'])
    assert f'config file not found: {REPO / "nowhere.py"}' in err([str(REPO / 'nowhere.py')])
    assert '--steps must be >= 1' in err([str(TOY), '--steps', '0'])

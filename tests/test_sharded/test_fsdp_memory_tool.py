"""tools/benchmarks/fsdp_memory.py in its smallest mode: the toy model, FSDP + activation
checkpointing, 2 gloo ranks, 1 step."""
import json

import pytest

from _sharded_env import free_port, sub_env
from _sharded_env import load_tool as _load_tool


def load_tool():
    return _load_tool('benchmarks/fsdp_memory.py')


@pytest.mark.slow
def test_smallest_mode_measures_both_ranks(tmp_path, monkeypatch, capsys):
    for key, value in sub_env().items():
        monkeypatch.setenv(key, value)
    tool = load_tool()
    out = tmp_path / 'mem.json'
    assert tool.main(['--arch', 'toy', '--modes', 'fsdp-ckpt', '--steps', '1', '--out',
                      str(out), '--port', str(free_port())]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 1
    row = rows[0]
    assert (row['arch'], row['mode'], row['ranks'], row['batch']) == ('toy', 'fsdp-ckpt', 2, 4)
    assert row['params'] == 431945 and row['img'] == 64
    assert 0.5 < row['loss'] < 2.0
    for base, peak in zip(row['ranks_base'], row['ranks_peak']):
        assert 200 * 2**20 < base < peak < base + 2**30  # libraries < peak < libraries + 1 GiB
    assert row['peak'] == max(row['ranks_peak'])
    table = capsys.readouterr().out
    assert '| toy | 0.43M | fsdp-ckpt | 2 x 4 |' in table


def test_table_figures_are_mib():
    tool = load_tool()
    row = dict(arch='base', params=114665784, mode='ddp', ranks=2, batch=4, state=3 * 2**30,
               peak=5 * 2**30, base=2**30, step_s=12.34)
    assert tool.table([row]).splitlines()[-1] == \
        '| base | 114.67M | ddp | 2 x 4 | 3,072 | 5,120 | 4,096 | 12.3 |'

"""tests/helpers/subprocesses.py and tests/helpers/tools.py: the one subprocess environment
and the one way of loading a tools/ script."""
import os
import sys
import types

import pytest
from helpers.subprocesses import REPO, TESTS, run_python, scrubbed_env
from helpers.tools import load_tool, tool_path


def test_scrubbed_env(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    monkeypatch.setenv('PYTHONPATH', '/inherited')
    monkeypatch.setenv('OMP_NUM_THREADS', '16')
    env = scrubbed_env(threads=3, import_dirs=[tmp_path])
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in env
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    assert env['PYTHONPATH'].split(os.pathsep) == [str(tmp_path), str(TESTS), str(REPO),
                                                   '/inherited']
    assert os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] == '1'  # the parent's is untouched
    monkeypatch.delenv('PYTHONPATH')
    assert scrubbed_env()['PYTHONPATH'].split(os.pathsep) == [str(TESTS), str(REPO)]
    for bad in (0, -1, 1.5, '2'):
        with pytest.raises(ValueError, match=rf'threads must be a whole number >= 1, got '
                                             rf'{bad!r}'):
            scrubbed_env(threads=bad)


@pytest.mark.slow  # starts an interpreter
def test_run_python_child_sees_the_scrubbed_env(monkeypatch):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    proc = run_python(['-c', 'import os, helpers; print(os.getcwd(), '
                             'os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"), '
                             'os.environ["OMP_NUM_THREADS"])'], threads=2, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(REPO), 'None', '2']


def test_load_tool_once_by_its_script_name():
    mod = load_tool('misc/data_layout')
    assert mod is load_tool('misc/data_layout.py') is sys.modules['data_layout']
    assert mod.__file__ == str(tool_path('misc/data_layout.py'))
    # the tool's own sibling import sees the same module (one DataLayoutError class)
    assert load_tool('misc/dry_run').check_loaders is mod.check_loaders


def test_load_tool_errors(monkeypatch):
    with pytest.raises(FileNotFoundError, match=r'no tool script .*tools/misc/nope\.py'):
        load_tool('misc/nope')
    monkeypatch.setitem(sys.modules, 'get_flops', types.ModuleType('get_flops'))
    with pytest.raises(ImportError, match=r"the module name 'get_flops' is already taken"):
        load_tool('analysis_tools/get_flops')

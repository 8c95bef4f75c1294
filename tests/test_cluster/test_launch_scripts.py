"""The launch scripts use the repository's .venv when it exists, PYTHON overrides, and they
say which interpreter they picked (run on a copy of tools/ with a fake interpreter)."""
import os
import shutil
import stat
import subprocess

import pytest

pytestmark = pytest.mark.slow  # each test starts the bash launch scripts

SCRIPTS = ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh']
ARGS = {'dist_train.sh': ['cfg.py', '2'], 'dist_test.sh': ['cfg.py', 'ck.pth', '2'],
        'slurm_train.sh': ['part', 'job', 'cfg.py', 'wd'],
        'slurm_test.sh': ['part', 'job', 'cfg.py', 'ck.pth']}


def fake_python(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "RAN $0 $*"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def copy(repo, tmp_path):
    (tmp_path / 'tools').mkdir()
    for name in SCRIPTS + ['pick_python.sh']:
        shutil.copy(os.path.join(repo, 'tools', name), tmp_path / 'tools' / name)
    bin_dir = tmp_path / 'bin'  # srun stand-in: skips its options, runs the interpreter
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text('#!/bin/bash\nwhile [[ ! -x $1 ]]; do shift; done\nexec "$@"\n')
    (bin_dir / 'srun').chmod(0o755)
    return tmp_path


def launch(copy, name, **env):
    full = dict(os.environ, PATH=f'{copy / "bin"}:{os.environ["PATH"]}', **env)
    full.pop('PYTHON', None) if 'PYTHON' not in env else None
    return subprocess.run(['bash', str(copy / 'tools' / name), *ARGS[name]], env=full,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('name', SCRIPTS)
def test_repo_venv_is_used_and_named(copy, name):
    venv_py = fake_python(copy / '.venv' / 'bin' / 'python')
    out = launch(copy, name)
    assert out.returncode == 0, out.stderr
    assert f'{name}: using {venv_py} (the repository\'s .venv)' in out.stderr
    assert out.stdout.startswith(f'RAN {venv_py} ')


@pytest.mark.parametrize('name', SCRIPTS)
def test_python_overrides_the_venv(copy, name):
    fake_python(copy / '.venv' / 'bin' / 'python')
    mine = fake_python(copy / 'other' / 'python')
    out = launch(copy, name, PYTHON=str(mine))
    assert out.returncode == 0, out.stderr
    assert f'using {mine} (PYTHON)' in out.stderr and out.stdout.startswith(f'RAN {mine} ')


def test_without_venv_python3_is_used_with_a_hint(copy):
    out = launch(copy, 'dist_train.sh', PYTHON=str(copy / 'missing'))
    assert out.returncode == 2 and 'is not an executable' in out.stderr
    fake_python(copy / 'bin' / 'python3')
    out = launch(copy, 'dist_train.sh')
    assert out.returncode == 0, out.stderr
    assert "python3 on PATH (no" in out.stderr and "run 'make env'" in out.stderr

"""Paths and subprocess environment shared by the tests of tools/."""
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / 'tests'
TOY_CONFIG = TESTS / 'test_tools' / 'configs' / 'toy_regression.py'
TRAIN = REPO / 'tools' / 'train.py'
TEST = REPO / 'tools' / 'test.py'



def tool_env(threads=1):
    """Environment for tool subprocesses: few threads, the toy components
    importable, weights_only never switched off."""
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = str(threads)
    env['MKL_NUM_THREADS'] = str(threads)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(TESTS), str(REPO)] +
        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return env


def run_tool(args, timeout=180, **kwargs):
    return subprocess.run([sys.executable] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          env=tool_env(), cwd=str(REPO), **kwargs)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

"""Paths and subprocess environment of the sharded-training tests."""
import importlib.util
import os
import os.path as osp
import socket
from types import ModuleType

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def sub_env(threads: int = 1) -> dict:
    """Subprocess environment: this checkout's mmmixmae first, few threads."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                PYTHONPATH=os.pathsep.join([REPO, osp.join(REPO, 'tests')]))


def load_tool(relpath: str) -> ModuleType:
    """Import ``tools/<relpath>`` by path (tools/ is not a package)."""
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_deepspeed() -> ModuleType:
    """``deepspeed``, or skip the test where it is not installed -- except under CI
    (``CI=true``), whose environment (tools/install/setup_env.sh) installs it: there a missing
    deepspeed fails the test."""
    import pytest
    try:
        import deepspeed
    except ImportError as err:
        if os.environ.get('CI') == 'true':
            raise AssertionError('deepspeed is not installed, but tools/install/setup_env.sh '
                                 'installs it for CI') from err
        pytest.skip('deepspeed is not installed (tools/install/setup_env.sh installs it)')
    return deepspeed

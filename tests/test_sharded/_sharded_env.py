"""Paths and subprocess environment of the sharded-training tests."""
import os
import os.path as osp
import socket

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

"""The environment of every Python subprocess a test starts (tools, torchrun, the demo).

One rule for all of them: a fixed number of threads per process (two test processes must not
each take every core), the repository and ``tests/`` importable (the toy components and
``helpers`` the subprocess configs name in ``custom_imports``), plus any folder a test adds,
and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` removed, so that a test can never pass because
weights-only loading was switched off in the environment it inherited.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence, Union

__all__ = ['REPO', 'TESTS', 'scrubbed_env', 'run_python', 'free_port']

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / 'tests'

#: environment variables that would switch off a safety the tests rely on
SCRUBBED = ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', )

PathLike = Union[str, os.PathLike]


def scrubbed_env(threads: int = 1, import_dirs: Sequence[PathLike] = ()) -> Dict[str, str]:
    """``os.environ`` for a test subprocess.

    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = ``threads``; ``PYTHONPATH`` =
    ``import_dirs``, ``tests/``, the repository, then the inherited one; the variables of
    :data:`SCRUBBED` removed.
    """
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f'scrubbed_env: threads must be a whole number >= 1, got {threads!r}')
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    paths = [str(p) for p in import_dirs] + [str(TESTS), str(REPO)]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    for name in SCRUBBED:
        env.pop(name, None)
    return env


def run_python(args: Sequence[PathLike], timeout: float = 180, threads: int = 1,
               import_dirs: Sequence[PathLike] = ()) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root in :func:`scrubbed_env`; text output
    captured."""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO),
                          env=scrubbed_env(threads, import_dirs))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for torchrun's ``--master_port``)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

"""Decide how mmcv's compiled ops are built for this host, and print the plan.

``tools/install/setup_env.sh`` runs ``python tools/install/mmcv_plan.py`` and
``eval``s its ``KEY=VALUE`` lines. Every decision is a small function of explicit
inputs (environment variables, detected devices, installed torch), so it can be
tested without a GPU; only :func:`detect_host` looks at the real machine.

Decisions:

* ops: ``MMMIXMAE_MMCV_OPS`` = ``cpu`` | ``cuda`` | ``auto`` (default). ``auto`` picks
  ``cuda`` when a CUDA device is visible (to torch or to ``nvidia-smi``), else ``cpu``.
* architectures: ``TORCH_CUDA_ARCH_LIST`` when set, else the compute capabilities of
  the visible GPUs; a forced ``cuda`` build with neither is refused.
* headers: torch's CUDA wheels ship cuSPARSE/cuBLAS/cuDNN headers in
  ``site-packages/nvidia/<pkg>/include``; they are found next to the installed torch.
* cache: CPU wheels at the top of the cache, CUDA wheels under
  ``cuda<version>-sm<arch>[_<arch>...]``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

VALID_OPS = ('auto', 'cpu', 'cuda')
_ARCH_RE = re.compile(r'^\d+\.\d+(\+PTX)?$')


class PlanError(ValueError):
    """A set-up request that cannot be honoured (message says which switch)."""


@dataclass
class Host:
    """What the set-up sees on this machine.

    Args:
        torch_cuda: ``torch.version.cuda`` of the installed torch (None: CPU build).
        torch_capabilities: ``(major, minor)`` of each device torch can use.
        smi_capabilities: ``"9.0"``-style compute capabilities listed by nvidia-smi.
        device_nodes: whether ``/dev/nvidia[0-9]*`` exist.
        torch_dir: folder of the installed ``torch`` package (None: not installed).
        cuda_home: root of the CUDA toolkit whose nvcc is used (None: no nvcc found).
    """
    torch_cuda: str | None = None
    torch_capabilities: list[tuple[int, int]] = field(default_factory=list)
    smi_capabilities: list[str] = field(default_factory=list)
    device_nodes: bool = False
    torch_dir: Path | None = None
    cuda_home: Path | None = None

    @property
    def gpu_visible(self) -> bool:
        return bool(self.torch_capabilities or self.smi_capabilities)


def choose_ops(requested: str | None, host: Host) -> str:
    """``cpu`` or ``cuda`` from ``MMMIXMAE_MMCV_OPS`` (None/'' mean ``auto``)."""
    req = (requested or 'auto').strip().lower()
    if req not in VALID_OPS:
        raise PlanError(f'MMMIXMAE_MMCV_OPS={requested!r}: expected one of {", ".join(VALID_OPS)}')
    if req == 'auto':
        return 'cuda' if host.gpu_visible else 'cpu'
    if req == 'cuda' and host.torch_dir is not None and host.torch_cuda is None:
        raise PlanError('MMMIXMAE_MMCV_OPS=cuda but the installed torch is a CPU build '
                        '(torch.version.cuda is None); install a CUDA build of torch first')
    return req


def arch_list(env_value: str | None, host: Host) -> list[str]:
    """Architectures to compile for: ``TORCH_CUDA_ARCH_LIST`` or the visible GPUs.

    Returns sorted, de-duplicated entries such as ``['8.0', '9.0']``.
    """
    if env_value and env_value.strip():
        items = [a for a in re.split(r'[;\s,]+', env_value.strip()) if a]
        bad = [a for a in items if not _ARCH_RE.match(a)]
        if bad:
            raise PlanError(f'TORCH_CUDA_ARCH_LIST={env_value!r}: {bad} are not of the form 9.0 or 9.0+PTX')
        return sorted(set(items), key=_arch_key)
    caps = [f'{ma}.{mi}' for ma, mi in host.torch_capabilities] or list(host.smi_capabilities)
    if not caps:
        raise PlanError('a CUDA build of mmcv needs its GPU architectures: no GPU is visible, '
                        'so set TORCH_CUDA_ARCH_LIST (e.g. TORCH_CUDA_ARCH_LIST=9.0 for H100/H200)')
    return sorted(set(caps), key=_arch_key)


def _arch_key(arch: str) -> tuple[int, int, str]:
    major, minor = arch.split('+')[0].split('.')
    return int(major), int(minor), arch


def cuda_include_dirs(torch_dir: Path) -> list[Path]:
    """Header folders of the CUDA libraries shipped next to the installed torch.

    torch's CUDA wheels depend on ``nvidia-*`` wheels whose headers (cusparse.h,
    cublas_v2.h, cudnn.h, ...) live in ``site-packages/nvidia/*/include``.
    """
    nvidia = torch_dir.parent / 'nvidia'
    return sorted(p for p in nvidia.glob('*/include') if p.is_dir())


def cache_subdir(ops: str, cuda_version: str | None, archs: Sequence[str]) -> str:
    """Cache folder (relative) of the wheel: '' for CPU ops, ``cuda13.0-sm90`` for CUDA."""
    if ops == 'cpu':
        return ''
    if not cuda_version:
        raise PlanError('a CUDA build of mmcv needs torch.version.cuda (the installed torch is a CPU build)')
    tags = '_'.join(a.replace('.', '').replace('+PTX', 'ptx') for a in archs)
    return f'cuda{cuda_version}-sm{tags}'


def make_plan(env: Mapping[str, str], host: Host) -> dict[str, str]:
    """All decisions as shell-safe ``KEY -> value`` strings."""
    ops = choose_ops(env.get('MMMIXMAE_MMCV_OPS'), host)
    plan = {'MMCV_OPS': ops, 'MMCV_ARCH_LIST': '', 'MMCV_CPATH': '', 'MMCV_CACHE_SUBDIR': '',
            'MMCV_CUDA_HOME': '',
            'MMCV_GPU_VISIBLE': '1' if host.gpu_visible else '0',
            'TORCH_CUDA': host.torch_cuda or ''}
    if ops == 'cuda':
        archs = arch_list(env.get('TORCH_CUDA_ARCH_LIST'), host)
        plan['MMCV_ARCH_LIST'] = ';'.join(archs)
        plan['MMCV_CACHE_SUBDIR'] = cache_subdir(ops, host.torch_cuda, archs)
        if host.torch_dir is None:
            raise PlanError('torch must be installed before the CUDA build of mmcv is planned')
        incs = cuda_include_dirs(host.torch_dir)
        if not any((p / 'cusparse.h').is_file() for p in incs):
            raise PlanError(f'no cusparse.h under {host.torch_dir.parent / "nvidia"}/*/include: '
                            'the installed torch does not ship the CUDA headers mmcv needs')
        home = host.cuda_home
        if home is None:
            raise PlanError('a CUDA build of mmcv needs nvcc: put the CUDA toolkit of torch\'s '
                            f'CUDA {host.torch_cuda} on PATH, or set CUDA_HOME')
        if not (home / 'include' / 'crt' / 'host_defines.h').is_file():
            raise PlanError(f'no include/crt/host_defines.h under the CUDA toolkit {home}: '
                            'set CUDA_HOME to the toolkit root (the folder holding bin/nvcc)')
        # the toolkit's own headers first: torch's nvidia/cu13/include has cuda_runtime_api.h
        # without the crt/ headers it includes
        plan['MMCV_CUDA_HOME'] = str(home)
        plan['MMCV_CPATH'] = ':'.join(str(p) for p in [home / 'include', *incs])
    return plan


def find_cuda_home(env: Mapping[str, str]) -> Path | None:
    """``CUDA_HOME`` if set, else the toolkit root nvcc reports (``TOP=`` of ``--dryrun``).

    nvcc on PATH may be a wrapper script (``/usr/local/bin/nvcc``): torch would then take
    ``/usr/local`` for the toolkit and miss its headers, so nvcc itself is asked.
    """
    if env.get('CUDA_HOME'):
        return Path(env['CUDA_HOME'])
    nvcc = shutil.which('nvcc')
    if not nvcc:
        return None
    try:
        out = subprocess.run([nvcc, '--dryrun', '-c', '-x', 'cu', os.devnull, '-o', os.devnull],
                             capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        out = ''
    for line in out.splitlines():
        if line.startswith('#$ TOP='):
            return Path(line.split('=', 1)[1].strip()).resolve()
    return Path(nvcc).resolve().parent.parent


def _smi_capabilities() -> list[str]:
    smi = shutil.which('nvidia-smi')
    if not smi:
        return []
    try:
        out = subprocess.run([smi, '--query-gpu=compute_cap', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [c.strip() for c in out.splitlines() if _ARCH_RE.match(c.strip())]


def detect_host() -> Host:
    """Look at the real machine (torch if installed, nvidia-smi, /dev/nvidia*)."""
    host = Host(device_nodes=any(Path('/dev').glob('nvidia[0-9]*')),
                smi_capabilities=_smi_capabilities(), cuda_home=find_cuda_home(os.environ))
    try:
        import torch
    except ImportError:
        return host
    host.torch_dir = Path(torch.__file__).parent
    host.torch_cuda = torch.version.cuda
    if torch.cuda.is_available():
        host.torch_capabilities = [torch.cuda.get_device_capability(i)
                                   for i in range(torch.cuda.device_count())]
    return host


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.parse_args(argv)
    try:
        plan = make_plan(os.environ, detect_host())
    except PlanError as err:
        print(f'mmcv_plan: {err}', file=sys.stderr)
        return 2
    for key, value in plan.items():
        print(f"{key}='{value}'")
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Refuse to train on CPU when the host has NVIDIA GPUs that torch cannot use.

A distributed run on a host without CUDA switches from ``nccl`` to ``gloo`` on CPU
(:mod:`mmmixmae.compat`). That switch must only happen on hosts that really have no
GPU: with GPUs present but unusable (a driver older than the CUDA build of torch, a
CPU-only torch wheel, a broken container set-up), a 16-GPU job would otherwise train
quietly on CPUs. :func:`refuse_hidden_gpus` is called by the switch and raises
:class:`UnusableGPUError` naming torch's CUDA version and the likely cause.

GPUs count as present when ``/dev/nvidia<N>`` device nodes exist or ``nvidia-smi -L``
lists one. ``CUDA_VISIBLE_DEVICES`` set to an empty string or ``-1`` means the user
hid the GPUs on purpose: then CPU training is allowed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

__all__ = ['UnusableGPUError', 'nvidia_device_nodes', 'nvidia_smi_gpus', 'gpus_hidden_on_purpose',
           'hidden_gpu_message', 'refuse_hidden_gpus']

_NODE_RE = re.compile(r'^nvidia\d+$')


class UnusableGPUError(RuntimeError):
    """GPUs are present on this host but torch cannot use them."""


def nvidia_device_nodes(dev: Path = Path('/dev')) -> list[str]:
    """Names of the ``/dev/nvidia<N>`` GPU device nodes (not nvidiactl/uvm)."""
    try:
        return sorted(p.name for p in dev.iterdir() if _NODE_RE.match(p.name))
    except OSError:
        return []


def nvidia_smi_gpus(run: Optional[Callable[[Sequence[str]], str]] = None) -> list[str]:
    """``GPU 0: ...`` lines of ``nvidia-smi -L`` ([] when absent or failing)."""
    if run is None:
        if shutil.which('nvidia-smi') is None:
            return []
        run = _run_smi
    try:
        out = run(['nvidia-smi', '-L'])
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().startswith('GPU ')]


def _run_smi(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30,
                          check=True).stdout


def gpus_hidden_on_purpose(environ: Mapping[str, str]) -> bool:
    """``CUDA_VISIBLE_DEVICES`` is set to '' or -1: the user asked for no GPU."""
    value = environ.get('CUDA_VISIBLE_DEVICES')
    return value is not None and value.strip() in ('', '-1')


def hidden_gpu_message(nodes: Sequence[str], smi: Sequence[str], torch_cuda: Optional[str],
                       init_error: str = '') -> str:
    """The error text: what was found, torch's CUDA version, the likely cause."""
    found = ', '.join(list(smi)[:4]) or ', '.join('/dev/' + n for n in nodes)
    if torch_cuda is None:
        cause = ('the installed torch is a CPU-only build (torch.version.cuda is None); '
                 'install a CUDA build of torch 2.14.1 that matches the driver')
    else:
        cause = (f'torch was built for CUDA {torch_cuda}; the likely cause is an NVIDIA driver '
                 f'older than CUDA {torch_cuda} needs (see nvidia-smi), or the GPUs are not '
                 'exposed to this process (container runtime); install the torch 2.14.1 '
                 'build for the CUDA version the driver supports (docs/en/faq.md)')
    detail = f' [torch: {init_error}]' if init_error else ''
    return (f'GPUs are present ({found}) but torch cannot use them '
            f'(torch.cuda.is_available() is False): {cause}. Refusing to fall back to '
            f'training on CPU with gloo; to train on CPU on purpose set '
            f'CUDA_VISIBLE_DEVICES=""{detail}')


def _torch_init_error() -> str:
    import torch
    try:
        torch.cuda.init()
    except Exception as err:  # noqa: BLE001 - only its text is reported
        return ' '.join(str(err).split())[:300]
    return ''


def refuse_hidden_gpus(environ: Optional[Mapping[str, str]] = None,
                       nodes: Optional[Sequence[str]] = None,
                       smi: Optional[Sequence[str]] = None,
                       torch_cuda: Optional[str] = ...,  # type: ignore[assignment]
                       init_error: Optional[str] = None) -> None:
    """Raise :class:`UnusableGPUError` when GPUs exist but CUDA is unusable.

    Call only where torch reports no CUDA. Every input defaults to the real host
    (environment, ``/dev``, ``nvidia-smi``, ``torch.version.cuda``); tests pass fakes.
    """
    environ = os.environ if environ is None else environ
    if gpus_hidden_on_purpose(environ):
        return
    nodes = nvidia_device_nodes() if nodes is None else list(nodes)
    smi = nvidia_smi_gpus() if smi is None else list(smi)
    if not nodes and not smi:
        return
    if torch_cuda is ...:
        import torch
        torch_cuda = torch.version.cuda
    if init_error is None:
        init_error = _torch_init_error()
    raise UnusableGPUError(hidden_gpu_message(nodes, smi, torch_cuda, init_error))

"""Peak memory per rank of MixMAE pretraining: DDP vs FSDP vs FSDP + activation checkpointing.

    python tools/benchmarks/fsdp_memory.py --arch base --batch 4 --steps 3 --nproc 2

launches, for each of ``--modes`` (``ddp``, ``fsdp``, ``fsdp-ckpt``), ``--nproc`` processes
with ``torch.distributed.run`` (gloo on CPU, NCCL where CUDA is available) that each build the
pretraining model of the real config (``base`` / ``large`` / ``huge``: the 300e config;
``toy``: the CPU toy config), wrap it with mmengine's ``DDPStrategy`` or ``FSDPStrategy``
(the shipped block wrap policy, ``use_orig_params``; ``fsdp-ckpt`` adds per-block activation
checkpointing), all in float32 with AdamW, and run ``--steps`` training steps of ``--batch``
random images per rank.  Per rank it records (CPU: the process's resident memory from
``/proc/self/status``; CUDA: ``torch.cuda.max_memory_allocated``):

* ``base``: after imports and process-group start (the interpreter, torch, mmpretrain);
* ``state``: after wrapping and building the optimizer, freed heap returned to the system
  (``malloc_trim``): parameters as each rank keeps them, gradients not yet allocated;
* ``peak``: the high-water mark during the training steps only (``VmHWM`` reset by writing 5
  to ``/proc/self/clear_refs`` before each step; ``step_peaks`` per step), which includes the
  gradients, AdamW's two moments (allocated at the end of the first step, so a first step's
  peak may lack them), the activations and FSDP's gathered units.

``peak - base`` is the memory training needs per rank on top of the libraries.  The table is
printed as Markdown and written with the raw numbers to ``--out`` (JSON).  ``--arch toy
--steps 1`` is the smoke mode the tests run.
"""
import argparse
import ctypes
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {'toy': 'configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py',
           'base': 'configs/mixmae/mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py',
           'large': 'configs/mixmae/mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py',
           'huge': 'configs/mixmae/mixmae_swin-huge-w14_16xb128-amp-coslr-300e_in1k.py'}
MODES = ('ddp', 'fsdp', 'fsdp-ckpt')
MIB = 2**20


# ----------------------------------------------------------------------------- measuring
def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def current_bytes() -> int:
    """Resident memory now (CPU) or allocated GPU memory (CUDA), in bytes."""
    if torch.cuda.is_available():
        return torch.cuda.memory_allocated()
    return _status_kib('VmRSS') * 1024


def release_free_heap() -> None:
    """Give freed heap back to the system so that resident memory shows live data."""
    if not torch.cuda.is_available():
        ctypes.CDLL('libc.so.6').malloc_trim(0)


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current resident size


def peak_bytes() -> int:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return _status_kib('VmHWM') * 1024


# ----------------------------------------------------------------------------- one rank
def _strategy(mode: str):
    env = dict(launcher='pytorch',
               dist_cfg=dict(backend='nccl' if torch.cuda.is_available() else 'gloo'))
    if mode == 'ddp':
        from mmengine._strategy import DDPStrategy
        return DDPStrategy(env_kwargs=env)
    from mmengine._strategy import FSDPStrategy
    ckpt = dict(check_fn='mixmae_block_checkpoint_fn') if mode == 'fsdp-ckpt' else None
    return FSDPStrategy(
        model_wrapper=dict(type='MMFullyShardedDataParallel',
                           auto_wrap_policy='mixmae_block_wrap_policy', use_orig_params=True,
                           sync_module_states=True),
        activation_checkpointing=ckpt, env_kwargs=env)


def _batch(batch: int, img: int, step: int, rank: int) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(1000 * step + rank)
    imgs = torch.randint(0, 256, (batch, 3, img, img), generator=g, dtype=torch.uint8)
    return dict(inputs=[imgs], data_samples=[DataSample() for _ in range(batch)])


def run_rank(arch: str, mode: str, batch: int, steps: int) -> dict:
    """Build, wrap and train on this rank; the memory record of :func:`main`'s table."""
    import mmmixmae  # noqa: F401  (modules, compat patches)
    import mmmixmae.engine  # noqa: F401  (wrap policy, checkpoint selector)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    DefaultScope.get_instance('fsdp_memory', scope_name='mmpretrain')
    strategy = _strategy(mode)  # starts the process group
    rank = int(os.environ['RANK'])
    release_free_heap()
    base = current_bytes()
    model_cfg = Config.fromfile(osp.join(REPO, CONFIGS[arch])).model
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    img = int(model_cfg.backbone.img_size)
    params = sum(p.numel() for p in model.parameters())
    strategy.prepare(model, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95),
                                            weight_decay=0.05)))
    del model
    release_free_heap()
    state = current_bytes()
    times: List[float] = []
    step_peaks: List[int] = []
    for step in range(steps):
        torch.manual_seed(10 * step + rank)
        reset_peak()
        start = time.perf_counter()
        log = strategy.model.train_step(_batch(batch, img, step, rank), strategy.optim_wrapper)
        times.append(time.perf_counter() - start)
        step_peaks.append(peak_bytes())
    return dict(rank=rank, arch=arch, mode=mode, batch=batch, steps=steps, img=img,
                params=params, base=base, state=state, peak=max(step_peaks),
                step_peaks=step_peaks, loss=float(log['loss']), step_s=times)


def worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist
    record = run_rank(args.arch, args.mode, args.batch, args.steps)
    records = [None] * dist.get_world_size()
    dist.all_gather_object(records, record)
    if record['rank'] == 0:
        with open(args.out, 'w') as f:
            json.dump(records, f)
    from mmmixmae.utils.dist_teardown import close_process_group
    close_process_group()


# ----------------------------------------------------------------------------- driver
def launch(arch: str, mode: str, batch: int, steps: int, nproc: int, out: str,
           port: int) -> List[dict]:
    """One ``torch.distributed.run`` of :func:`worker`; the per-rank records."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           f'--master_port={port}', osp.abspath(__file__), '--worker', '--arch', arch,
           '--mode', mode, '--batch', str(batch), '--steps', str(steps), '--out', out]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{arch}/{mode} failed (exit {proc.returncode}):\n'
                           f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')
    with open(out) as f:
        return json.load(f)


def table(rows: List[dict]) -> str:
    """Markdown: one line per (arch, mode), the largest rank's figures, in MiB."""
    lines = ['| model | params | mode | ranks x batch | state / rank | peak / rank | '
             'peak - base / rank | s / step |', '| --- | ---: | --- | --- | ---: | ---: | ---: '
             '| ---: |']
    for r in rows:
        lines.append(
            f'| {r["arch"]} | {r["params"] / 1e6:.2f}M | {r["mode"]} | {r["ranks"]} x '
            f'{r["batch"]} | {r["state"] / MIB:,.0f} | {r["peak"] / MIB:,.0f} | '
            f'{(r["peak"] - r["base"]) / MIB:,.0f} | {r["step_s"]:.1f} |')
    return '\n'.join(lines)


def summarize(records: List[dict]) -> Dict:
    """The worst rank of one run (memory) and the median step time after the first."""
    worst = max(records, key=lambda r: r['peak'])
    times = sorted(records[0]['step_s'][1:] or records[0]['step_s'])
    return dict(worst, ranks=len(records), step_s=times[len(times) // 2],
                ranks_peak=[r['peak'] for r in records], ranks_base=[r['base'] for r in records])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', nargs='+', default=['base'], choices=sorted(CONFIGS))
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument('--batch', type=int, default=4, help='images per rank')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--port', type=int, default=29631)
    parser.add_argument('--out', default='fsdp_memory.json')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.arch = args.arch[0]
        worker(args)
        return 0
    rows = []
    for arch in args.arch:
        for mode in args.modes:
            records = launch(arch, mode, args.batch, args.steps, args.nproc,
                             args.out + f'.{arch}.{mode}.json', args.port)
            rows.append(summarize(records))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    with open(args.out, 'w') as f:
        json.dump(rows, f, indent=1)
    print(table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())

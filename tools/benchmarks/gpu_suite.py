"""GPU benchmark suite: MixMAE-B/L/H pretraining throughput, MFU and memory vs mmpretrain.

One command on a CUDA machine:

    python tools/benchmarks/gpu_suite.py --out work_dirs/gpu_suite

times bf16-AMP pretraining steps (forward, backward, fused AdamW) of MixMAE-B/L/H at batch
64/32/16 on 224 px, for every attention path (``dense``, ``grouped``), eager and
``torch.compile``-d, next to mmpretrain's MixMIM-B (eager and compiled), and writes
``gpu_suite.json`` and ``gpu_suite.md``.  Columns: images/s, model-FLOPs utilisation and
peak memory.

MFU = 2 x (forward multiply-adds per image from ``tools/analysis_tools/get_flops.py``, which
counts one multiply-add as one FLOP) x 3 (forward + backward) x batch / step time / the
device's peak dense bf16 FLOP/s, named in the table (``--peak-tflops`` for a device not in
``PEAK_BF16_TFLOPS``).  The multiply-adds are counted for the model as timed, so the grouped
path is credited only with the attention work it does.

``--smoke`` runs the same code on the CPU with a tiny arch, batch 2, 64 px, eager rows only
(inductor compilation takes minutes on a small CPU; ``--smoke-compile`` adds the compiled
rows), so that a GPU run cannot fail on a typo.

Sections: the suite is a list of named sections (``SECTIONS``); each takes the parsed
arguments and returns ``{'title', 'columns', 'rows'}``.  Another section is added with
``@section('name')`` and selected with ``--sections``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

#: peak dense bf16 tensor-core FLOP/s (no sparsity), in TFLOP/s, by device-name substring
PEAK_BF16_TFLOPS = {'H200': 989.0, 'H100 SXM': 989.0, 'H100 PCIe': 756.0, 'H100': 989.0,
                    'A100': 312.0, 'L40S': 362.0}
ARCHS = {'base': (128, 64), 'large': (192, 32), 'huge': (352, 16)}  # embed dims, batch
SMOKE_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
SECTIONS: Dict[str, Callable[[argparse.Namespace], dict]] = {}


def section(name: str):
    """Register a suite section ``fn(args) -> {'title', 'columns', 'rows'}``."""

    def wrap(fn):
        if name in SECTIONS:
            raise ValueError(f'gpu_suite section {name!r} is registered twice')
        SECTIONS[name] = fn
        return fn

    return wrap


def build_pretrainer(which: str, arch, img: int, attn_path: str = 'auto'):
    """Our MixMAE (``which='mmmixmae'``) or mmpretrain's MixMIM, with the configs' decoder."""
    import mmmixmae  # noqa: F401
    from mmpretrain.registry import MODELS
    if isinstance(arch, dict):
        dims, dec = arch['embed_dims'], dict(embed_dims=32, depth=1, num_heads=2)
    else:
        dims, dec = ARCHS[arch][0], dict(embed_dims=512, depth=8, num_heads=16)
    if which == 'mmmixmae':
        cfg = dict(type='MixMAE',
                   backbone=dict(type='MixMAESwin', arch=arch, img_size=img, attn_path=attn_path,
                                 window_size=(14, 14, 14, 7) if img >= 224 else (4, 4, 2, 2)),
                   neck=dict(type='MixMAEDecoder', in_channels=dims * 8, img_size=img, **dec),
                   head=dict(type='MixMAEPretrainHead', norm_pix=True))
    else:
        if isinstance(arch, dict):
            raise ValueError('mmpretrain MixMIM needs a named arch (base/large/huge)')
        cfg = dict(type='MixMIM',
                   backbone=dict(type='MixMIMPretrainTransformer', arch=arch, img_size=img),
                   neck=dict(type='MixMIMPretrainDecoder', num_patches=(img // 32)**2,
                             encoder_stride=32, embed_dim=dims * 8, decoder_embed_dim=512,
                             decoder_depth=8, decoder_num_heads=16),
                   head=dict(type='MixMIMPretrainHead', norm_pix=True,
                             loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def forward_macs(model, img: int) -> float:
    """Forward multiply-adds per image, counted as get_flops.py counts them."""
    from mmmixmae.apis.complexity import model_complexity
    if not hasattr(model, 'mask_ratio'):
        return float('nan')  # mmpretrain's MixMIM: counted as ours, see time_config
    was = model.training
    res = model_complexity(model, (img, img))
    model.train(was)
    return float(res['flops'])


def peak_flops(args, device: torch.device):
    """``(name, FLOP/s)`` of the device's peak dense bf16 rate, or ``(name, None)`` on CPU."""
    if device.type != 'cuda':
        return 'CPU (smoke run, no MFU)', None
    name = torch.cuda.get_device_name(device)
    if args.peak_tflops:
        return f'{name} ({args.peak_tflops} TFLOP/s bf16, given)', args.peak_tflops * 1e12
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return f'{name} ({tflops} TFLOP/s dense bf16)', tflops * 1e12
    raise SystemExit(f'gpu_suite: no peak bf16 FLOP/s known for {name!r}; pass --peak-tflops')


def time_config(model, batch: int, img: int, device, steps: int, warmup: int,
                compiled: bool) -> dict:
    """Median step time, first-step time and peak memory of bf16-AMP pretraining steps."""
    model = model.to(device).train()
    if compiled:
        from mmmixmae.models.utils.compile import set_compile
        # ours: compile=True (token-wise parts; attention buckets change shape every step);
        # mmpretrain's MixMIM has no such switch: its backbone and decoder are compiled whole
        if not set_compile(model, True):
            model.backbone = torch.compile(model.backbone)
            model.neck = torch.compile(model.neck)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=device.type == 'cuda')
    x = torch.randn(batch, 3, img, img, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model.loss(x, None)['loss']
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            raise RuntimeError(f'gpu_suite: non-finite loss {loss.item()}')

    def timed():
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = timed()
    for _ in range(max(warmup - 1, 0)):
        timed()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = [timed() for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None
    return dict(step_s=statistics.median(times), first_step_s=first, peak_mib=peak)


@section('pretrain')
def pretrain_section(args) -> dict:
    device = torch.device(args.device)
    peak_name, peak = peak_flops(args, device)
    img = 64 if args.smoke else 224
    if args.smoke:
        plan = [('smoke-tiny', SMOKE_ARCH, 2)]
    else:
        plan = [(f'MixMAE-{a[0].upper()}', a, ARCHS[a][1]) for a in args.archs]
    rows: List[dict] = []
    compiles = [False] if args.no_compile or (args.smoke and not args.smoke_compile) \
        else [False, True]
    for label, arch, batch in plan:
        for path in args.attn_paths:
            for compiled in compiles:
                torch.manual_seed(0)
                model = build_pretrainer('mmmixmae', arch, img, path)
                macs = forward_macs(model, img)
                rows.append(_row(label, path, compiled, batch, macs,
                                 time_config(model, batch, img, device, args.steps,
                                             args.warmup, compiled), peak))
                del model
    if not args.smoke:
        for compiled in compiles:
            torch.manual_seed(0)
            ref = build_pretrainer('mmpretrain', 'base', img)
            # same architecture as MixMAE-B: its model FLOPs are our dense MixMAE-B count
            macs = forward_macs(build_pretrainer('mmmixmae', 'base', img, 'dense'), img)
            rows.append(_row('mmpretrain MixMIM-B', 'mmpretrain', compiled, ARCHS['base'][1],
                             macs, time_config(ref, ARCHS['base'][1], img, device, args.steps,
                                               args.warmup, compiled), peak))
            del ref
    return dict(title=f'Pretraining, bf16 AMP, {img} px, on {peak_name}',
                columns=['model', 'attn path', 'compiled', 'batch', 'images/s', 'MFU',
                         'peak MiB', 'first step s'],
                rows=rows)


@section('sharding')
def sharding_section(args) -> dict:
    """Peak memory per rank: DDP vs FSDP vs FSDP + activation checkpointing.

    Runs ``tools/benchmarks/fsdp_memory.py`` (float32, AdamW) on every visible GPU (at least
    one rank); ``--smoke``: the toy config on 2 CPU ranks.  Opt-in with ``--smoke``
    (``--sections sharding``), part of the default suite on a GPU.
    """
    gpus = torch.cuda.device_count() if args.device.startswith('cuda') else 0
    archs = ['toy'] if args.smoke else [a for a in args.archs if a in ('base', 'large')]
    os.makedirs(args.out, exist_ok=True)
    out = osp.join(args.out, 'sharding_memory.json')
    cmd = [sys.executable, osp.join(osp.dirname(osp.abspath(__file__)), 'fsdp_memory.py'),
           '--arch', *archs, '--steps', '1' if args.smoke else '3',
           '--nproc', str(max(gpus, 1) if gpus else 2), '--out', out]
    cmd += ['--batch', '2'] if args.smoke else ['--batch', str(ARCHS['large'][1])]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        runs = json.load(f)
    mib = 2**20  # fsdp_memory.py records bytes
    rows = [{'arch': r['arch'], 'mode': r['mode'], 'ranks': r['ranks'],
             'state MiB': round(r['state'] / mib, 1), 'peak MiB': round(r['peak'] / mib, 1),
             'peak - base MiB': round((r['peak'] - r['base']) / mib, 1),
             'step s': round(r['step_s'], 3)} for r in runs]
    return dict(title=f'Sharded training: memory per rank (worst rank), float32, '
                f'{rows[0]["ranks"] if rows else 0} ranks',
                columns=['arch', 'mode', 'ranks', 'state MiB', 'peak MiB', 'peak - base MiB',
                         'step s'], rows=rows)


def _row(label, path, compiled, batch, macs, t, peak) -> dict:
    mfu = None if peak is None else 2 * macs * 3 * batch / t['step_s'] / peak
    return {'model': label, 'attn path': path, 'compiled': compiled, 'batch': batch,
            'images/s': round(batch / t['step_s'], 2),
            'MFU': None if mfu is None else round(mfu, 4),
            'peak MiB': None if t['peak_mib'] is None else round(t['peak_mib'], 1),
            'first step s': round(t['first_step_s'], 2), 'step_s': t['step_s'],
            'forward_macs_per_image': macs}


def to_markdown(results: List[dict]) -> str:
    out = []
    for sec in results:
        out += [f"### {sec['title']}", '', '| ' + ' | '.join(sec['columns']) + ' |',
                '|' + ' --- |' * len(sec['columns'])]
        for r in sec['rows']:
            cells = ['-' if r.get(c) is None else
                     (f'{100 * r[c]:.1f}%' if c == 'MFU' else str(r[c])) for c in sec['columns']]
            out.append('| ' + ' | '.join(cells) + ' |')
        out.append('')
    return '\n'.join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='work_dirs/gpu_suite', help='folder for the JSON and markdown')
    p.add_argument('--smoke', action='store_true', help='CPU, tiny arch, a few seconds per row')
    p.add_argument('--device', default=None, help='default: cuda (cpu with --smoke)')
    p.add_argument('--sections', nargs='+', default=None, help=f'default: all of {list(SECTIONS)}')
    p.add_argument('--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS))
    p.add_argument('--attn-paths', nargs='+', default=['dense', 'grouped'],
                   choices=['dense', 'grouped', 'auto'])
    p.add_argument('--no-compile', action='store_true', help='eager rows only')
    p.add_argument('--smoke-compile', action='store_true', help='compiled rows in --smoke too')
    p.add_argument('--steps', type=int, default=None, help='timed steps (default 20, smoke 2)')
    p.add_argument('--warmup', type=int, default=None, help='untimed steps (default 5, smoke 1)')
    p.add_argument('--peak-tflops', type=float, default=None,
                   help='peak dense bf16 TFLOP/s of a device not in PEAK_BF16_TFLOPS')
    args = p.parse_args(argv)
    args.device = args.device or ('cpu' if args.smoke else 'cuda')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        p.error('no CUDA device: run on a GPU machine, or use --smoke for the CPU check')
    args.steps = args.steps or (2 if args.smoke else 20)
    args.warmup = args.warmup or (1 if args.smoke else 5)
    # the sharding section launches processes: on the CPU only when asked for by name
    args.sections = args.sections or [n for n in SECTIONS if not (args.smoke and n == 'sharding')]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f'unknown sections {unknown}; known: {list(SECTIONS)}')
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    results = [dict(name=name, **SECTIONS[name](args)) for name in args.sections]
    os.makedirs(args.out, exist_ok=True)
    meta = dict(torch=torch.__version__, device=args.device, smoke=args.smoke,
                command=' '.join([osp.basename(sys.executable)] + sys.argv))
    with open(osp.join(args.out, 'gpu_suite.json'), 'w') as f:
        json.dump(dict(meta=meta, sections=results), f, indent=1)
    with open(osp.join(args.out, 'gpu_suite.md'), 'w') as f:
        f.write(to_markdown(results))
    print(to_markdown(results))
    return results


if __name__ == '__main__':
    main()

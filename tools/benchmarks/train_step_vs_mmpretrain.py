"""Time a full MixMAE pretraining train step against mmpretrain's own MixMIM.

Both models are built with the same arch, batch, image size and dtype; one step is forward,
backward and an AdamW update.  The two are alternated step by step in one process (these
machines are noisy), and the median times and their ratio are printed.  Peak memory is
measured per model in a fresh subprocess (CPU: peak RSS growth; CUDA: max allocated).

``--attn-path`` picks our pretraining attention path (``dense``, ``grouped``, ``auto``); the
attention work of the grouped path as a share of the dense one is reported next to the
exact-group ideal.  ``--compile`` wraps both models' backbone and decoder in ``torch.compile``.

Example (the figures in docs/en/benchmarks.md):
    python tools/benchmarks/train_step_vs_mmpretrain.py --arch base --batch 4 --steps 6 \
        --attn-path grouped --dtype bf16 --same-optimizer
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def build(which: str, arch: str, img: int, fused='auto', attn_path='auto', compile_=False):
    import mmmixmae  # noqa: F401  (registers MixMAE; mmpretrain's MixMIM is registered too)
    from mmpretrain.registry import MODELS
    dims = {'base': 128, 'large': 192, 'huge': 352}[arch]
    if which == 'mmmixmae':
        cfg = dict(type='MixMAE',
                   backbone=dict(type='MixMAESwin', arch=arch, img_size=img,
                                 use_fused_attn=fused, attn_path=attn_path),
                   neck=dict(type='MixMAEDecoder', in_channels=dims * 8, img_size=img),
                   head=dict(type='MixMAEPretrainHead', norm_pix=True))
    else:
        cfg = dict(type='MixMIM',
                   backbone=dict(type='MixMIMPretrainTransformer', arch=arch, img_size=img),
                   neck=dict(type='MixMIMPretrainDecoder', num_patches=(img // 32)**2,
                             encoder_stride=32, embed_dim=dims * 8, decoder_embed_dim=512,
                             decoder_depth=8, decoder_num_heads=16),
                   head=dict(type='MixMIMPretrainHead', norm_pix=True,
                             loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    model = MODELS.build(cfg)
    model.init_weights()
    if compile_:
        model.backbone = torch.compile(model.backbone)
        model.neck = torch.compile(model.neck)
    return model


def make_step(model, dtype, device, fused=False):
    # each side's optimizer as its configs build it: mmpretrain's MixMIM configs use plain
    # AdamW; ours set fused=True (configs/mixmae/_base_/mixmae_pretrain_in1k.py)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=fused)

    def step(x):
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model.loss(x, None)['loss']
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def parse_dtype(name):
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[name]


def time_both(args, device):
    torch.manual_seed(0)
    dtype = parse_dtype(args.dtype)
    models = {w: build(w, args.arch, args.img, attn_path=args.attn_path,
                       compile_=args.compile).to(device).train()
              for w in ('mmmixmae', 'mmpretrain')}
    steps = {w: make_step(m, dtype, device, fused=(w == 'mmmixmae' and not args.same_optimizer))
             for w, m in models.items()}
    x = torch.randn(args.batch, 3, args.img, args.img, device=device)
    times = {w: [] for w in models}
    first = {}
    for i in range(args.warmup + args.steps):
        order = list(models) if i % 2 == 0 else list(models)[::-1]
        for w in order:
            sync(device)
            t0 = time.perf_counter()
            steps[w](x)
            sync(device)
            if i == 0:
                first[w] = time.perf_counter() - t0
            if i >= args.warmup:
                times[w].append(time.perf_counter() - t0)
    return times, first


def work_share(args) -> dict:
    """Attention multiply-adds of the grouped path as a share of dense, at ratio 0.5."""
    from mmmixmae.models.backbones.mixmae_swin import MixMAESwin
    from mmmixmae.models.utils.attn_work import attention_work
    rep = attention_work(MixMAESwin(arch=args.arch, img_size=args.img), img_size=args.img)
    return dict(attn_work_share_grouped=round(rep['total']['share'], 4),
                attn_work_share_exact_ideal=round(rep['total']['exact_share'], 4),
                attn_work_share_per_stage=[round(s['share'], 4) for s in rep['stages']])


def peak_memory(args, which):
    """Run a few steps of one model in a fresh process and report its peak memory (MiB)."""
    cmd = [sys.executable, __file__, '--arch', args.arch, '--batch', str(args.batch), '--img',
           str(args.img), '--dtype', args.dtype, '--device', args.device, '--memory-of', which,
           '--attn-path', args.attn_path]
    cmd += ['--compile'] if args.compile else []
    cmd += ['--same-optimizer'] if args.same_optimizer else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])['peak_mib']


def memory_child(args, device):
    torch.manual_seed(0)
    dtype = parse_dtype(args.dtype)
    x = torch.randn(args.batch, 3, args.img, args.img, device=device)
    model = build(args.memory_of, args.arch, args.img, attn_path=args.attn_path,
                  compile_=args.compile).to(device).train()
    step = make_step(model, dtype, device,
                     fused=args.memory_of == 'mmmixmae' and not args.same_optimizer)
    step(x)  # optimizer state exists from here on
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(x)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        # peak resident set of the whole process: weights, optimizer state, activations
        for _ in range(2):
            step(x)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({'peak_mib': peak / 2**20}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='base', choices=['base', 'large', 'huge'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--img', type=int, default=224)
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--steps', type=int, default=6)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--same-optimizer', action='store_true',
                        help='give mmmixmae the same (unfused) AdamW as mmpretrain, to time '
                        'the models alone')
    parser.add_argument('--attn-path', default='auto', choices=['dense', 'grouped', 'auto'],
                        help="mmmixmae's pretraining attention path")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile both models\' backbone and decoder (first step '
                        'reported separately)')
    parser.add_argument('--memory-of', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.memory_of:
        return memory_child(args, device)
    # memory first: Linux keeps ru_maxrss across fork/exec, so a child started after the
    # parent has built both models would inherit the parent's high-water mark
    peaks = {}
    if not args.no_memory:
        peaks = {w: round(peak_memory(args, w), 1) for w in ('mmmixmae', 'mmpretrain')}
    times, first = time_both(args, device)
    med = {w: statistics.median(t) for w, t in times.items()}
    ratio = med['mmpretrain'] / med['mmmixmae']
    # per alternated pair: the spread of the ratio says how much the machine's load moved it
    pair = sorted(b / a for a, b in zip(times['mmmixmae'], times['mmpretrain']))
    result = dict(arch=args.arch, batch=args.batch, img=args.img, dtype=args.dtype,
                  optimizer='same unfused AdamW' if args.same_optimizer else
                  'each toolkit\'s config (mmmixmae: fused AdamW)',
                  device=str(device), threads=torch.get_num_threads(),
                  step_s_mmmixmae=round(med['mmmixmae'], 4),
                  step_s_mmpretrain=round(med['mmpretrain'], 4), speedup=round(ratio, 3),
                  pair_speedup_min_max=[round(pair[0], 3), round(pair[-1], 3)],
                  first_step_s={w: round(t, 2) for w, t in first.items()},
                  images_per_s_mmmixmae=round(args.batch / med['mmmixmae'], 2),
                  attn_path=args.attn_path, compile=args.compile,
                  load_average=[round(v, 2) for v in os.getloadavg()])
    result.update(work_share(args))
    for w, peak in peaks.items():
        result[f'peak_mib_{w}'] = peak
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()

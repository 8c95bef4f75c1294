"""Time our pretraining train step with ``compile=True`` against the same model in eager mode.

Both models are built with the same weights; their steps (forward, backward, AdamW) are
alternated in one process, and the JSON reports the first step of each (the compiled one
includes compilation), the median steady-state step times and their ratio
(``speedup = eager / compiled``, above 1: compiling pays).

Example (the figures in docs/en/benchmarks.md):
    python tools/benchmarks/compile_vs_eager.py --arch base --batch 4 --steps 4
"""
import argparse
import json
import os
import statistics
import time

import torch


def build(arch: str, img: int, attn_path: str, compile_: bool):
    import mmmixmae  # noqa: F401  (registers MixMAE)
    from mmpretrain.registry import MODELS
    dims = {'base': 128, 'large': 192, 'huge': 352}[arch]
    cfg = dict(type='MixMAE',
               backbone=dict(type='MixMAESwin', arch=arch, img_size=img, attn_path=attn_path,
                             compile=compile_),
               neck=dict(type='MixMAEDecoder', in_channels=dims * 8, img_size=img,
                         compile=compile_),
               head=dict(type='MixMAEPretrainHead', norm_pix=True))
    return MODELS.build(cfg).train()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='base', choices=['base', 'large', 'huge'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--img', type=int, default=224)
    parser.add_argument('--attn-path', default='grouped', choices=['dense', 'grouped', 'auto'])
    parser.add_argument('--steps', type=int, default=4, help='timed steps after the first')
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {'eager': build(args.arch, args.img, args.attn_path, False),
              'compiled': build(args.arch, args.img, args.attn_path, True)}
    models['compiled'].load_state_dict(models['eager'].state_dict())
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
            for k, m in models.items()}
    x = torch.randn(args.batch, 3, args.img, args.img)
    first, times, losses = {}, {k: [] for k in models}, {k: [] for k in models}
    for i in range(1 + args.steps):
        for k in (list(models) if i % 2 == 0 else list(models)[::-1]):
            mask = models[k].sample_mask(x, generator=torch.Generator().manual_seed(i))
            t0 = time.perf_counter()
            loss = models[k].loss(x, mask=mask)['loss']
            loss.backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            losses[k].append(round(loss.item(), 6))
            if i == 0:
                first[k] = round(dt, 2)
            else:
                times[k].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps(dict(arch=args.arch, batch=args.batch, img=args.img, attn_path=args.attn_path,
                          threads=torch.get_num_threads(), first_step_s=first,
                          step_s={k: round(v, 4) for k, v in med.items()},
                          speedup=round(med['eager'] / med['compiled'], 3),
                          losses=losses, load_average=[round(v, 2) for v in os.getloadavg()]),
                     indent=1))


if __name__ == '__main__':
    main()

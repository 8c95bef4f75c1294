"""Time the pretraining train step of several MixMAE configs side by side.

Every config's model is built in one process and trained on the same fixed random batch
(forward, loss, backward, AdamW update). The steps go round-robin, in an order that rotates
each round, so a slow phase of a shared machine hits every config alike. The JSON reports
each config's median step time, its ratio to the first config (the reference), and the load
average at the end.

Example (the ablation table of docs/en/backbones.md):
    python tools/benchmarks/config_step_time.py \\
        configs/mixmae/mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py \\
        configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py --batch 16 --steps 10
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmixmae.apis.common import ToolError, run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='config_step_time.py',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='MixMAE pretraining configs; the first is '
                        'the reference of the ratios')
    parser.add_argument('--batch', type=int, default=16, help='images per step')
    parser.add_argument('--img', type=int, default=None,
                        help="image size (default: the first config's backbone img_size)")
    parser.add_argument('--steps', type=int, default=10, help='timed steps per config')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per config')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    return parser.parse_args(argv)


def build_pretrainer(config: str) -> torch.nn.Module:
    """Builds the config's model in train mode; refuses anything but a MixMAE pretrainer."""
    from mmmixmae.apis.common import build_model, check_file, load_tool_config
    check_file(config, 'config file')
    model = build_model(load_tool_config(config, None), config)
    if not (hasattr(model, 'sample_mask') and hasattr(model, 'loss')):
        raise ToolError(f'{config}: model {type(model).__name__} is not a MixMAE pretrainer '
                        '(it has no sample_mask / loss)')
    return model.train()


def one_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
             seed: int) -> float:
    """One forward + backward + AdamW step; returns seconds."""
    mask = model.sample_mask(x, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    loss = model.loss(x, mask=mask)['loss']
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1 or args.batch < 2:
        raise ToolError(f'--steps must be >= 1 and --batch >= 2, got {args.steps} and {args.batch}')
    torch.manual_seed(0)
    models = {c: build_pretrainer(c) for c in args.configs}
    img = args.img or getattr(next(iter(models.values())).backbone, 'img_size', 224)
    img = img[0] if isinstance(img, (tuple, list)) else img
    opts = {c: torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
            for c, m in models.items()}
    x = torch.randn(args.batch, 3, img, img, generator=torch.Generator().manual_seed(0))
    times: Dict[str, List[float]] = {c: [] for c in models}
    names = list(models)
    for i in range(args.warmup + args.steps):
        order = names[i % len(names):] + names[:i % len(names)]
        for c in order:
            dt = one_step(models[c], opts[c], x, seed=i)
            if i >= args.warmup:
                times[c].append(dt)
    med = {c: statistics.median(v) for c, v in times.items()}
    ref = med[names[0]]
    result = dict(batch=args.batch, img=img, threads=torch.get_num_threads(), steps=args.steps,
                  warmup=args.warmup,
                  step_s={osp.basename(c): round(v, 4) for c, v in med.items()},
                  ratio_to_first={osp.basename(c): round(v / ref, 3) for c, v in med.items()},
                  load_average=[round(v, 2) for v in os.getloadavg()])
    print(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    run_tool(main, prog='config_step_time.py')()

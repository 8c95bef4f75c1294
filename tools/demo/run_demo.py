"""``make demo``: pretrain a tiny MixMAE on real photographs, on a CPU, in a few minutes.

    python tools/demo/run_demo.py [--iters N] [--work-dir DIR] [--device cpu|cuda|cuda:N]
        [--config C] [--batch-size B] [--seed S] [--eval-batches E]

No data set and no GPU are needed: the images are the sample photographs that ship inside the
installed scikit-image and scikit-learn packages (astronaut, chelsea, coffee, hubble_deep_field,
rocket, motorcycle_left/right, retina, ihc, china, flower), read from disk, never downloaded.
Training goes through the config system and mmengine's Runner, exactly as ``tools/train.py``
would run the demo config: random resized crops, the mixing mask, the dual reconstruction loss,
AdamW with warm-up and cosine decay, log lines with an ETA, checkpoints.

At the end it measures, on the same fixed batches of real crops and masks, the reconstruction
loss of the trained model, of the model before training, and of predicting zeros (about 1.0:
the norm-pix target has mean 0 and variance 1 in every cell), writes a reconstruction picture
with :func:`mmmixmae.apis.visualize.visualize_reconstruction` and a ``summary.json``.  It exits with
status 1 when the trained loss is not clearly below the zero-prediction loss.

Everything goes to ``work_dirs/demo/``: ``<timestamp>/<timestamp>.log`` (the Runner's log),
``iter_*.pth`` checkpoints, ``reconstruction.png``, ``summary.json``.
"""
import argparse
import json
import logging
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'mixmae', 'mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py')
#: the trained loss must be below this share of the zero-prediction loss
SUCCESS_RATIO = 0.9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='run_demo.py',
        description='Pretrain a tiny MixMAE on the sample photos of scikit-image and '
        'scikit-learn (CPU, a few minutes), then picture its reconstructions.')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config\'s, 600)')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'),
                        help='where the log, checkpoints and picture go (work_dirs/demo)')
    parser.add_argument('--device', default='cpu',
                        help='cpu (default), cuda or cuda:N; cpu hides any GPU from the run')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='demo config')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images per iteration (default: the config\'s, 16)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the run')
    parser.add_argument('--eval-batches', type=int, default=4,
                        help='fixed batches of crops the final losses are measured on (4)')
    return parser.parse_args(argv)


def check_args(args):
    from mmmixmae.apis.common import ToolError, check_file
    check_file(args.config, 'config file')
    if args.iters is not None and args.iters < 1:
        raise ToolError(f'--iters must be at least 1, got {args.iters}')
    if args.batch_size is not None and args.batch_size < 2:
        raise ToolError(f'--batch-size must be at least 2 (images are mixed in pairs), '
                        f'got {args.batch_size}')
    if args.eval_batches < 1:
        raise ToolError(f'--eval-batches must be at least 1, got {args.eval_batches}')
    if args.device not in ('cpu', 'cuda') and not args.device.startswith('cuda:'):
        raise ToolError(f'--device must be cpu, cuda or cuda:N, got {args.device!r}')
    if osp.exists(args.work_dir) and not osp.isdir(args.work_dir):
        raise ToolError(f'--work-dir {args.work_dir} exists and is not a folder')


def select_device(device: str) -> None:
    """Runs before torch is imported: ``cpu`` hides GPUs (mmengine picks CUDA when it sees one),
    ``cuda:N`` exposes only GPU N."""
    if device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    elif device.startswith('cuda:'):
        os.environ['CUDA_VISIBLE_DEVICES'] = device.split(':', 1)[1]


def adapt_schedule(cfg, iters: int) -> None:
    """Scale the warm-up + cosine schedule and the checkpoint interval to ``iters``."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    warm_end = None
    for sched in cfg.param_scheduler:
        if sched.type == 'LinearLR':
            warm_end = round(sched.end * iters / old)
            sched.begin, sched.end = 0, warm_end
    if warm_end is not None and warm_end < 5:
        # mmengine's schedulers chain: a warm-up of a step or two would leave the cosine
        # starting from a tiny lr, so very short runs start at the full lr instead
        cfg.param_scheduler = [s for s in cfg.param_scheduler if s.type != 'LinearLR']
        warm_end = None
    for sched in cfg.param_scheduler:
        if sched.type == 'CosineAnnealingLR':
            begin = warm_end if warm_end is not None else 0
            sched.begin, sched.end = begin, max(iters, begin + 1)
            sched.T_max = max(1, iters - begin)
    ckpt = cfg.default_hooks.checkpoint
    ckpt.interval = max(1, min(ckpt.interval, iters // 2 if iters >= 2 else 1))
    cfg.default_hooks.logger.interval = max(1, min(cfg.default_hooks.logger.interval,
                                                   iters // 10 if iters >= 10 else 1))


class _DropParamwiseListing(logging.Filter):
    """The optimizer constructor logs one line per parameter without weight decay."""

    def filter(self, record):
        return not str(record.getMessage()).startswith('paramwise_options --')


def quiet_console(logger) -> None:
    """Keep the per-parameter weight-decay listing out of the terminal (the log file keeps
    every line)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler):
            handler.addFilter(_DropParamwiseListing())


def fixed_eval_batches(runner, n_batches: int, seed: int):
    """``n_batches`` collated batches of the training pipeline under a private seed (the
    global RNG states are restored afterwards)."""
    import random

    import numpy as np
    import torch
    from mmengine.dataset import default_collate
    dataset = runner.train_dataloader.dataset
    batch_size = runner.train_dataloader.batch_size
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        batches = []
        for _ in range(n_batches):
            idx = rng.integers(0, len(dataset), size=batch_size)
            batches.append(default_collate([dataset[int(i)] for i in idx]))
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    return batches


def measure(model, batches, seed: int) -> dict:
    """Mean loss of ``model`` and of predicting zeros on fixed batches and fixed masks."""
    import torch
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses, zeros = [], []
    with torch.no_grad():
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            inputs = data['inputs']
            inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            mask = model.sample_mask(inputs, generator=gen)
            losses.append(float(model.loss(inputs, mask=mask.to(inputs.device))['loss']))
            target = model.head.construct_target(inputs)
            zeros.append(float((target.float()**2).mean()))
    model.train(was_training)
    return dict(loss=sum(losses) / len(losses), zero_loss=sum(zeros) / len(zeros))


def run(args) -> dict:
    t_start = time.time()
    import torch

    import mmmixmae  # noqa: F401  (registers modules, applies compat)
    from mmmixmae.apis.visualize import visualize_reconstruction
    from mmengine.runner import Runner
    from mmmixmae.apis.common import ToolError, load_tool_config
    from mmmixmae.datasets import packaged_photo_path
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ToolError(f'--device {args.device}: no CUDA device is available')

    cfg = load_tool_config(args.config)
    cfg.work_dir = osp.abspath(args.work_dir)
    cfg.randomness = dict(seed=args.seed, diff_rank_seed=False, deterministic=False)
    if args.iters is not None:
        adapt_schedule(cfg, args.iters)
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    iters = cfg.train_cfg.max_iters
    names = list(cfg.train_dataloader.dataset.get('names') or ['see the config'])

    runner = Runner.from_cfg(cfg)
    log = runner.logger
    quiet_console(log)
    dataset = runner.train_dataloader.dataset
    photos = ', '.join(getattr(dataset, 'names', names))
    log.info(f'MixMAE demo: {iters} iterations of batch {cfg.train_dataloader.batch_size} on '
             f'{len(runner.train_dataloader.dataset)} packaged photos ({photos}); '
             f'work dir {cfg.work_dir}')
    batches = fixed_eval_batches(runner, args.eval_batches, seed=1234)
    before = measure(runner.model, batches, seed=4321)
    log.info(f'before training: reconstruction loss {before["loss"]:.4f}, '
             f'predicting zeros {before["zero_loss"]:.4f}')

    t_train = time.time()
    runner.train()
    train_seconds = time.time() - t_train
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    after = measure(model, batches, seed=4321)
    history = runner.message_hub.get_scalar('train/loss')
    recent = history.data[0][-min(20, len(history.data[0])):]
    last_train = float(sum(recent) / len(recent))

    ckpts = sorted((f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')),
                   key=lambda f: osp.getmtime(osp.join(cfg.work_dir, f)))
    final_ckpt = osp.join(cfg.work_dir, f'iter_{iters}.pth')
    if not osp.isfile(final_ckpt):
        raise RuntimeError(f'the Runner wrote no final checkpoint {final_ckpt}')
    picture = osp.join(cfg.work_dir, 'reconstruction.png')
    img1, img2 = packaged_photo_path('astronaut'), packaged_photo_path('china')
    rec, _, _ = visualize_reconstruction(args.config, final_ckpt, img1, img2, picture, seed=0,
                              device='cpu')
    log_file = osp.join(cfg.work_dir, runner.timestamp, f'{runner.timestamp}.log')

    summary = dict(
        iters=iters,
        batch_size=cfg.train_dataloader.batch_size,
        images=len(runner.train_dataloader.dataset),
        loss_before=before['loss'],
        final_loss=after['loss'],
        zero_loss=after['zero_loss'],
        final_train_loss=last_train,
        picture_loss=rec.loss,
        picture_zero_loss=rec.zero_loss,
        success=after['loss'] < SUCCESS_RATIO * after['zero_loss'],
        checkpoints=[osp.join(cfg.work_dir, c) for c in ckpts],
        final_checkpoint=final_ckpt,
        picture=picture,
        log_file=log_file,
        train_seconds=round(train_seconds, 1),
        total_seconds=round(time.time() - t_start, 1),
        device=args.device,
        config=osp.abspath(args.config))
    with open(osp.join(cfg.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def report(summary: dict) -> None:
    zero = summary['zero_loss']
    bar = '=' * 72
    print(bar)
    print(f'MixMAE demo finished: {summary["iters"]} iterations in '
          f'{summary["train_seconds"]:.0f} s of training ({summary["total_seconds"]:.0f} s in all)')
    print(f'  reconstruction loss, trained model:    {summary["final_loss"]:.4f}')
    print(f'  reconstruction loss, before training:  {summary["loss_before"]:.4f}')
    print(f'  loss of predicting zeros:              {zero:.4f}   (the norm-pix target has '
          'variance 1 in every cell)')
    print(f'  (same {summary["batch_size"]}-image batches and masks for all three; mean training '
          f'loss of the last iterations: {summary["final_train_loss"]:.4f})')
    print(f'  log:           {summary["log_file"]}')
    print(f'  checkpoints:   {", ".join(osp.basename(c) for c in summary["checkpoints"])} in '
          f'{osp.dirname(summary["final_checkpoint"])}')
    print(f'  picture:       {summary["picture"]}')
    if summary['success']:
        print(f'The model learned: its loss is {100 * (1 - summary["final_loss"] / zero):.0f}% '
              'below that of predicting zeros.')
    else:
        print(f'The loss is NOT clearly below that of predicting zeros (needs < '
              f'{SUCCESS_RATIO:.2f} x {zero:.4f}); train longer (--iters).')
    print(bar)


def main(argv=None):
    args = parse_args(argv)
    select_device(args.device)  # before anything initializes CUDA
    check_args(args)
    summary = run(args)
    report(summary)
    if not summary['success']:
        raise SystemExit(1)
    return summary


if __name__ == '__main__':
    # the device is chosen before mmmixmae (and torch) are imported
    if '--help' not in sys.argv and '-h' not in sys.argv:
        select_device(parse_args().device)
    from mmmixmae.apis.common import run_tool
    run_tool(main, prog='run_demo.py')()

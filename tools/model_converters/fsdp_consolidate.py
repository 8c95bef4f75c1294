#!/usr/bin/env python
"""Gather a sharded FSDP checkpoint folder (rank0.pth ... rankN-1.pth) into one file.

    python -m torch.distributed.run --nproc_per_node=N \
        tools/model_converters/fsdp_consolidate.py CONFIG SHARD_DIR OUT [--cfg-options k=v ...]

N must be the number of ranks that wrote SHARD_DIR; CONFIG the (sharded) config that trained
it.  OUT is an ordinary mmengine checkpoint (``state_dict`` with the model's own names, no
optimizer) for fine-tuning (``init_cfg=Pretrained``), ``load_from`` and the dense configs.
Runs on CPU (gloo) when no GPU is present.
"""
import argparse
import os.path as osp
import sys

try:
    import mmmixmae  # noqa: F401  (applies mmmixmae.compat)
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mmmixmae  # noqa: F401

from mmengine.config import DictAction

from mmmixmae.engine.fsdp_consolidate import consolidate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='fsdp_consolidate.py', description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('shards', help='sharded checkpoint folder, e.g. work_dirs/x/iter_8.pth')
    parser.add_argument('out', help='single-file checkpoint to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None)
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config {args.config} not found')
    import os
    if 'LOCAL_RANK' not in os.environ:
        parser.error('run it under torch.distributed.run with as many processes as wrote '
                     f'{args.shards} (see --help)')
    out = consolidate(args.config, args.shards, args.out, cfg_options=args.cfg_options)
    if out:
        print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
"""Turn a sharded FSDP checkpoint folder into one full checkpoint file.

    python tools/model_converters/fsdp_sharded_to_full.py SRC_DIR DST

SRC_DIR: a checkpoint of a sharded config (``FSDPStrategy``, ``state_dict_cfg='local'``),
e.g. ``work_dirs/<config>/iter_8.pth/`` holding ``rank0.pth .. rank{N-1}.pth``.  Runs in one
process without GPUs or a process group, with any number of ranks behind the folder.  DST
gets ``{'meta', 'state_dict'}`` with the model's full weights (the optimizer state is not
copied): what fine-tuning (``init_cfg=Pretrained``), Mask R-CNN / UperNet,
``mmmixmae_to_backbone.py`` and ``tools/test.py`` read.  A missing or extra shard, shards of
different runs, or a folder not written by mmmixmae's FSDP support stop it naming the file.
"""
import argparse
import os
import os.path as osp
import sys

from mmmixmae.checkpoint import CheckpointConversionError
from mmmixmae.utils.errors import run_tool

PROG = 'fsdp_sharded_to_full.py'


def _main(argv=None) -> int:
    from mmmixmae.checkpoint.sharded import consolidate_sharded, save_full_checkpoint
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='sharded checkpoint folder (rank<i>.pth files)')
    parser.add_argument('dst', help='the full checkpoint file to write')
    args = parser.parse_args(argv)
    if not osp.isdir(args.src):
        raise CheckpointConversionError(
            f'{args.src} is not a folder of rank<i>.pth shards'
            + (' (a full checkpoint already: use it as it is)' if osp.isfile(args.src)
               else ''), args.src)
    if osp.abspath(args.dst).startswith(osp.abspath(args.src) + os.sep):
        raise CheckpointConversionError('DST must not be inside the shard folder', args.src)
    state_dict, meta = consolidate_sharded(args.src)
    try:
        save_full_checkpoint(state_dict, meta, args.dst)
    except OSError as err:
        raise CheckpointConversionError(f'cannot write {args.dst}: {err}', args.src) from None
    numel = sum(v.numel() for v in state_dict.values())
    print(f'{args.src}: {meta["consolidated_from"]["world_size"]} shards -> {args.dst}: '
          f'{len(state_dict)} tensors, {numel:,} elements')
    return 0


def main(argv=None) -> int:
    try:
        return run_tool(_main, PROG)(argv)
    except SystemExit as done:  # run_tool's exit 2, or argparse's
        return int(done.code or 0)


if __name__ == '__main__':
    sys.exit(main())

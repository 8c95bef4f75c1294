#!/usr/bin/env python
"""Turn a DeepSpeed ZeRO-2/3 checkpoint folder into one full checkpoint file.

    python tools/model_converters/deepspeed_to_full.py SRC_DIR DST

SRC_DIR: a checkpoint of a DeepSpeed config (``DeepSpeedStrategy``), e.g.
``work_dirs/<config>/iter_8.pth/`` holding deepspeed's ``*_model_states.pt`` and one
``*zero_pp_rank_<r>_mp_rank_00_optim_states.pt`` per rank.  Runs in one process without GPUs,
deepspeed's engine or a process group (deepspeed must be importable: its files pickle a few of
its classes), with any number of ranks behind the folder.  DST gets ``{'meta', 'state_dict'}``
with the model's full float32 weights, taken from the ZeRO optimizer's float32 master copy
(the optimizer state is not copied): what fine-tuning (``init_cfg=Pretrained``), Mask R-CNN /
UperNet, ``mmmixmae_to_backbone.py`` and ``tools/test.py`` read.  Every file is read
weights-only.  A missing or extra rank file, files of different runs or a folder that is not a
deepspeed checkpoint stop it naming the file.
"""
import argparse
import os
import os.path as osp
import sys

from mmmixmae.checkpoint import CheckpointConversionError
from mmmixmae.utils.errors import run_tool

PROG = 'deepspeed_to_full.py'


def _main(argv=None) -> int:
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed
    from mmmixmae.checkpoint.sharded import save_full_checkpoint
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='deepspeed checkpoint folder (iter_N.pth/ or epoch_N.pth/)')
    parser.add_argument('dst', help='the full checkpoint file to write')
    args = parser.parse_args(argv)
    if osp.abspath(args.dst).startswith(osp.abspath(args.src) + os.sep):
        raise CheckpointConversionError('DST must not be inside the checkpoint folder', args.src)
    state_dict, meta = consolidate_deepspeed(args.src)
    try:
        save_full_checkpoint(state_dict, meta, args.dst)
    except OSError as err:
        raise CheckpointConversionError(f'cannot write {args.dst}: {err}', args.src) from None
    source = meta['consolidated_from']
    numel = sum(v.numel() for v in state_dict.values())
    print(f'{args.src}: ZeRO-{source["zero_stage"]}, {source["world_size"]} ranks -> '
          f'{args.dst}: {len(state_dict)} tensors, {numel:,} elements')
    return 0


def main(argv=None) -> int:
    try:
        return run_tool(_main, PROG)(argv)
    except SystemExit as done:  # run_tool's exit 2, or argparse's
        return int(done.code or 0)


if __name__ == '__main__':
    sys.exit(main())

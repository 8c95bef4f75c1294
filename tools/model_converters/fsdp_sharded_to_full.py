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
import os.path as osp
import sys

from mmmixmae.checkpoint import CheckpointConversionError

PROG = 'fsdp_sharded_to_full.py'


def _check_folder(src: str) -> None:
    if not osp.isdir(src):
        raise CheckpointConversionError(
            f'{src} is not a folder of rank<i>.pth shards'
            + (' (a full checkpoint already: use it as it is)' if osp.isfile(src) else ''), src)


def main(argv=None) -> int:
    from mmmixmae.apis.converters import run_folder_converter
    from mmmixmae.checkpoint.sharded import consolidate_sharded
    return run_folder_converter(
        consolidate_sharded, lambda source: f'{source["world_size"]} shards',
        __doc__.split('\n\n')[0], 'sharded checkpoint folder (rank<i>.pth files)', PROG, argv,
        check_src=_check_folder)


if __name__ == '__main__':
    sys.exit(main())

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
import sys

PROG = 'deepspeed_to_full.py'


def main(argv=None) -> int:
    from mmmixmae.apis.converters import run_folder_converter
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed
    return run_folder_converter(
        consolidate_deepspeed,
        lambda source: f'ZeRO-{source["zero_stage"]}, {source["world_size"]} ranks',
        __doc__.split('\n\n')[0], 'deepspeed checkpoint folder (iter_N.pth/ or epoch_N.pth/)',
        PROG, argv)


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
"""Convert an official Sense-X/MixMIM checkpoint to mmmixmae.

    python tools/model_converters/mixmim_official_to_mmmixmae.py SRC DST

SRC is a file written by the official ``main_pretrain.py`` / ``main_finetune.py``
(``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``; only ``model`` is used)
or a bare state dict.  Pretraining checkpoints become a ``MixMAE`` checkpoint
(``backbone.*`` + ``neck.*``), fine-tuned ones an mmpretrain ``ImageClassifier``
checkpoint (``backbone.*`` + ``head.fc.*``).  ``relative_position_index`` buffers
are dropped (rebuilt); any other key without a rule, and any key the target
model needs but SRC lacks, stops the conversion with the list of keys.
"""
import sys

from mmmixmae.apis.converters import run_converter
from mmmixmae.checkpoint.convert import convert_official


def main(argv=None) -> int:
    return run_converter(convert_official, __doc__.split('\n\n')[0],
                         'mixmim_official_to_mmmixmae.py', argv)


if __name__ == '__main__':
    sys.exit(main())

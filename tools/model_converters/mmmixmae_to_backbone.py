#!/usr/bin/env python
"""Extract the backbone of an mmmixmae checkpoint for mmdet / mmseg.

    python tools/model_converters/mmmixmae_to_backbone.py SRC DST

SRC: an mmmixmae pretraining (``MixMAE``) or fine-tuning (``ImageClassifier``)
checkpoint.  DST keeps the ``backbone.*`` tensors (``relative_position_index``
dropped) and drops ``neck.*`` (decoder), ``head.*`` and ``data_preprocessor.*``;
the training state (optimizer, message hub, ...) is not copied.  Load it with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.  The
same init_cfg also works on SRC directly: the decoder keys are dropped and
counted at load time.
"""
import sys

from mmmixmae.apis.converters import run_converter
from mmmixmae.checkpoint.convert import extract_backbone


def main(argv=None) -> int:
    return run_converter(extract_backbone, __doc__.split('\n\n')[0], 'mmmixmae_to_backbone.py',
                         argv)


if __name__ == '__main__':
    sys.exit(main())

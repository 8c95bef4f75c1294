#!/usr/bin/env python
"""Convert an mmpretrain MixMIM checkpoint to mmmixmae.

    python tools/model_converters/mmpretrain_mixmim_to_mmmixmae.py SRC DST

SRC: an mmpretrain ``MixMIM`` pretraining checkpoint (``backbone.*`` +
``neck.*``), an ``ImageClassifier`` checkpoint (``backbone.*`` + ``head.fc.*``,
e.g. the output of mmpretrain's ``mixmim_to_mmpretrain.py``) or a bare
``MixMIMTransformer`` state dict.  mmcv names are renamed (``patch_embed.projection``
-> ``patch_embed.proj``, ``ln1``/``ln2`` -> ``norm1``/``norm2``, ``ffn.layers.0.0`` ->
``mlp.fc1``, ``ffn.layers.1`` -> ``mlp.fc2``, decoder ``ln1`` -> ``decoder_norm``), the
patch-merging LayerNorm and reduction are permuted from mmcv's ``nn.Unfold``
channel order to the block-major order of mmmixmae, and the sin-cos tables are
copied verbatim (their layout is reported).  Unknown or missing keys stop the
conversion with the list of keys.
"""
import sys

from mmmixmae.apis.converters import run_converter
from mmmixmae.checkpoint.convert import convert_mmpretrain


def main(argv=None) -> int:
    return run_converter(convert_mmpretrain, __doc__.split('\n\n')[0],
                         'mmpretrain_mixmim_to_mmmixmae.py', argv)


if __name__ == '__main__':
    sys.exit(main())

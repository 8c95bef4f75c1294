"""Reading, checking, loading and converting MixMAE checkpoints.

Three kinds of checkpoints reach mmmixmae:

* **mmmixmae / mmengine** checkpoints (``{'meta', 'state_dict', ...}``), keys
  ``backbone.*`` (official MixMIM names), ``neck.*`` (decoder) or ``head.fc.*``
  (mmpretrain's ``LinearClsHead``);
* **official Sense-X/MixMIM** checkpoints (``{'model', 'optimizer', 'epoch', 'scaler',
  'args'}``): the same names without a prefix, decoder keys ``decoder_*`` / ``mask_token``
  next to the encoder, ``head.*`` in fine-tuned ones;
* **mmpretrain** MixMIM checkpoints: mmcv/mmpretrain module names
  (``patch_embed.projection``, ``ln1``, ``ffn.layers.0.0`` ...) and the ``nn.Unfold``
  channel order in patch merging.

One module per concept:

==================  =======================================================================
``errors``          ``CheckpointError`` and its four kinds (all user errors)
``io``              weights-only reading, the allowlist, URL download
``state_dict``      finding the state dict in a checkpoint; revising keys
``report``          load and conversion summaries
``pretrained``      ``init_cfg=Pretrained`` for a backbone module (imports no model class)
``arch``            the model a state dict describes, from its shapes
``layout``          mmcv/official channel orders, sin-cos table layouts
``convert``         official / mmpretrain / backbone-only conversion rules
``sharded``         FSDP shard folders: checks, flat-parameter layouts, consolidation to one file
``deepspeed_zero``  DeepSpeed ZeRO-2/3 checkpoint folders: weights-only reading, consolidation
==================  =======================================================================

This ``__init__`` re-exports the reading and loading names; ``convert``, ``arch`` and
``layout`` depend on model utilities and are imported by their full names (so the
backbone, which imports :mod:`~mmmixmae.checkpoint.pretrained`, forms no import cycle).
"""
from .errors import (CheckpointConversionError, CheckpointError, CheckpointMismatchError,
                     InvalidCheckpointError, UnsafeCheckpointError)
from .io import (HISTORY_BUFFER_STATISTICS, checkpoint_safe_globals, install_safe_globals,
                 load_checkpoint_safely, read_checkpoint, restricted_getattr)
from .pretrained import load_pretrained_backbone
from .report import LoadReport, format_conversion_summary
from .state_dict import StateDict, find_state_dict, revise_keys, strip_prefix

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'InvalidCheckpointError',
    'CheckpointMismatchError', 'CheckpointConversionError', 'HISTORY_BUFFER_STATISTICS',
    'checkpoint_safe_globals', 'install_safe_globals', 'load_checkpoint_safely',
    'read_checkpoint', 'restricted_getattr', 'load_pretrained_backbone', 'LoadReport',
    'format_conversion_summary', 'StateDict', 'find_state_dict', 'revise_keys', 'strip_prefix'
]

"""Block-level units for FSDP: the wrap policy and the activation-checkpointing selector.

mmengine's ``MMFullyShardedDataParallel`` (``auto_wrap_policy``) and ``FSDPStrategy``
(``activation_checkpointing.check_fn``) take these by name from mmengine's root ``FUNCTIONS``
registry (both look names up with ``FUNCTIONS.get`` on the root, so a name registered only in
a child registry would not be found without a scope prefix).  One unit per transformer block:

* every ``MixMAEBlock`` of the Swin encoder (pretraining and fine-tuning), and
* every ``TransformerBlock`` of the MixMAE decoder.

Everything else (patch embedding, patch merging, final norm, decoder embed/pred, heads) stays
in the root unit, which FSDP gathers once per step.

Example (in a FlexibleRunner config)::

    strategy = dict(
        type='FSDPStrategy',
        model_wrapper=dict(auto_wrap_policy='mixmae_block_wrap_policy', use_orig_params=True),
        activation_checkpointing=dict(check_fn='mixmae_block_checkpoint_fn'))
"""
from typing import Tuple, Type

import torch.nn as nn
from mmengine.registry import FUNCTIONS

__all__ = ['sharding_unit_types', 'mixmae_block_wrap_policy', 'mixmae_block_checkpoint_fn']


def sharding_unit_types() -> Tuple[Type[nn.Module], ...]:
    """The module classes that form one FSDP unit / one checkpointed segment each.

    Imported lazily: :mod:`mmmixmae.engine` must stay importable without mmpretrain.
    """
    from mmmixmae.models.backbones.mixmae_blocks import MixMAEBlock
    from mmmixmae.models.utils.attention import TransformerBlock
    return (MixMAEBlock, TransformerBlock)


@FUNCTIONS.register_module()
def mixmae_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """FSDP ``auto_wrap_policy``: descend everywhere, wrap exactly the blocks.

    Args:
        module: the candidate submodule.
        recurse: True when FSDP asks whether to descend into ``module``.
        nonwrapped_numel: parameters of ``module`` not yet wrapped (unused: the rule is by
            type, not by size).

    Returns:
        bool: descend (``recurse=True``) or wrap ``module`` as one unit.
    """
    if recurse:
        return True
    return isinstance(module, sharding_unit_types())


@FUNCTIONS.register_module()
def mixmae_block_checkpoint_fn(module: nn.Module) -> bool:
    """``check_fn`` of ``apply_activation_checkpointing``: recompute each block in backward."""
    return isinstance(module, sharding_unit_types())

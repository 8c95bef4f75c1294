"""mmseg glue for MixMAE.  Configs load it with ``custom_imports=dict(imports=['mmmixmae.seg'])``.

Importing this module registers :class:`~mmmixmae.models.backbones.MixMAESwin` in mmseg's
``MODELS`` under the same name (so a segmentor config says ``backbone=dict(type='MixMAESwin')``
inside the ``mmseg`` scope) and ``MixMAELayerDecayOptimWrapperConstructor`` in mmengine's root
registry.  ``import mmmixmae`` alone never imports mmseg.
"""
from mmseg.registry import MODELS

from ..engine.optimizers import MixMAELayerDecayOptimWrapperConstructor
from ..models.backbones import MixMAESwin


def _register_backbone() -> None:
    registered = MODELS.module_dict.get('MixMAESwin')
    if registered is None:
        MODELS.register_module(name='MixMAESwin', module=MixMAESwin)
    elif registered is not MixMAESwin:
        raise RuntimeError(f'mmseg MODELS already holds a different MixMAESwin: {registered}')


_register_backbone()

__all__ = ['MixMAESwin', 'MixMAELayerDecayOptimWrapperConstructor']

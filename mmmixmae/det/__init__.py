"""mmdet glue for MixMAE.  Configs load it with ``custom_imports=dict(imports=['mmmixmae.det'])``.

Importing this module

* registers :class:`~mmmixmae.models.backbones.MixMAESwin` in mmdet's ``MODELS`` under the
  same name, so a detector config says ``backbone=dict(type='MixMAESwin', ...)`` inside the
  ``mmdet`` scope (the class object is the one registered in mmpretrain: one implementation);
* registers :class:`StrictCocoDataset` in mmdet's ``DATASETS`` (CocoDataset that refuses
  annotations whose category is not among the configured classes);
* registers ``MixMAELayerDecayOptimWrapperConstructor`` (mmengine root registry).

``import mmmixmae`` alone never imports mmdet: pretraining works without it.
"""
from mmdet.registry import MODELS

from ..engine.optimizers import MixMAELayerDecayOptimWrapperConstructor
from ..models.backbones import MixMAESwin
from .datasets import StrictCocoDataset


def _register_backbone() -> None:
    registered = MODELS.module_dict.get('MixMAESwin')
    if registered is None:
        MODELS.register_module(name='MixMAESwin', module=MixMAESwin)
    elif registered is not MixMAESwin:
        raise RuntimeError(f'mmdet MODELS already holds a different MixMAESwin: {registered}')


_register_backbone()

__all__ = ['MixMAESwin', 'StrictCocoDataset', 'MixMAELayerDecayOptimWrapperConstructor']

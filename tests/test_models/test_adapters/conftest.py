"""Tiny upstream backbones and helpers for the MixMAEAdapter tests."""
import copy

import pytest
import torch


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


TWINS_ARCH = dict(embed_dims=[16, 32, 48, 64], depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4],
                  patch_sizes=[4, 2, 2, 2], strides=[4, 2, 2, 2], mlp_ratios=[2, 2, 2, 2],
                  sr_ratios=[8, 4, 2, 1])
TINY = {
    # standard Swin W7 with shifted windows (224 px: grids 56/28/14/7)
    'swin-w7': (dict(type='SwinTransformer', arch=dict(embed_dims=16, depths=[2, 2, 2, 2],
                                                       num_heads=[1, 2, 2, 4]),
                     img_size=224, window_size=7, drop_path_rate=0.0, out_indices=(0, 1, 2, 3)),
                224),
    # W7 on a 96-px input: padded windows and small maps (pad_small_map)
    'swin-w7-pad': (dict(type='SwinTransformer', arch=dict(embed_dims=16, depths=[2, 2, 2, 2],
                                                           num_heads=[1, 2, 2, 4]),
                         img_size=96, window_size=7, drop_path_rate=0.0, pad_small_map=True,
                         out_indices=(0, 1, 2, 3)), 96),
    'convnext': (dict(type='ConvNeXt', arch=dict(depths=[1, 1, 2, 1], channels=[16, 32, 48, 64]),
                      out_indices=(0, 1, 2, 3), gap_before_final_norm=False), 96),
    'pcpvt': (dict(type='PCPVT', arch=copy.deepcopy(TWINS_ARCH), out_indices=(0, 1, 2, 3),
                   norm_after_stage=True), 128),
    'svt': (dict(type='SVT', arch=dict(copy.deepcopy(TWINS_ARCH), window_sizes=[7, 7, 7, 7]),
                 out_indices=(0, 1, 2, 3), norm_after_stage=True), 128),
}


def stage_modules(name: str, upstream) -> list:
    """The module whose output is each stage's feature map."""
    if name.startswith('swin'):
        return list(upstream.stages)
    if name == 'convnext':
        return list(upstream.stages)
    return [getattr(upstream, f'norm_after_stage{i}') for i in range(4)]


def as_tokens(out) -> torch.Tensor:
    """Any stage output -> ``[B, L, C]``."""
    if isinstance(out, tuple):
        out = out[0]
    if out.dim() == 4:
        out = out.flatten(2).transpose(1, 2)
    return out


def build_adapter(name: str, **overrides):
    from mmpretrain.registry import MODELS
    import mmmixmae  # noqa: F401
    cfg = copy.deepcopy(TINY[name][0])
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(dict(type='MixMAEAdapter', backbone=cfg))
    model.init_weights()
    return model


def build_upstream(name: str):
    from mmpretrain.registry import MODELS
    return MODELS.build(copy.deepcopy(TINY[name][0]))


def fixed_mask(size: int, seed: int = 0) -> torch.Tensor:
    """A 0.5 mixing mask on the 32-px grid with both values present."""
    from mmmixmae.models.utils.mixing import random_mixing_mask
    g = torch.Generator().manual_seed(seed)
    return random_mixing_mask((size // 32, size // 32), 0.5, generator=g)


class _Kit:
    """The helpers above, handed to tests as the ``kit`` fixture."""
    TINY = TINY
    stage_modules = staticmethod(stage_modules)
    as_tokens = staticmethod(as_tokens)
    build_adapter = staticmethod(build_adapter)
    build_upstream = staticmethod(build_upstream)
    fixed_mask = staticmethod(fixed_mask)


@pytest.fixture
def kit():
    return _Kit


def pytest_generate_tests(metafunc):
    if 'tiny_name' in metafunc.fixturenames:
        metafunc.parametrize('tiny_name', list(TINY))

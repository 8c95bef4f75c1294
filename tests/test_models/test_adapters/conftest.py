"""Tiny upstream backbones and helpers for the MixMAEAdapter tests."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

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


REPO = Path(__file__).resolve().parents[3]
#: the CPU demo config of each adapted backbone
DEMO_CONFIGS = {
    'swin': 'configs/mixmae/mixmae_swin-demo-w4_1xb16-600it_photos_cpu.py',
    'convnext': 'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py',
    'pcpvt': 'configs/mixmae/mixmae_pcpvt-demo_1xb16-600it_photos_cpu.py',
    'svt': 'configs/mixmae/mixmae_svt-demo_1xb16-600it_photos_cpu.py',
}
#: iterations of the demo runs the slow tests train (the configs' schedule is 600)
DEMO_ITERS = 20


def run_demo(name: str, work: Path) -> dict:
    """Train ``DEMO_CONFIGS[name]`` for ``DEMO_ITERS`` iterations through
    ``tools/demo/run_demo.py`` (mmpretrain's Runner) in a subprocess; returns its
    ``summary.json`` with ``work_dir`` and ``checkpoint`` added."""
    env = dict(os.environ, OMP_NUM_THREADS='2', MKL_NUM_THREADS='2')
    env['PYTHONPATH'] = str(REPO) + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH')
                                     else '')
    proc = subprocess.run(
        [sys.executable, 'tools/demo/run_demo.py', '--config', DEMO_CONFIGS[name], '--iters',
         str(DEMO_ITERS), '--work-dir', str(work)],
        capture_output=True, text=True, env=env, timeout=900, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((work / 'summary.json').read_text())
    return dict(summary, work_dir=str(work), checkpoint=str(work / f'iter_{DEMO_ITERS}.pth'))


class DemoRuns:
    """``demo_run(name)``: the ``DEMO_ITERS``-iteration demo run of one backbone, trained once
    per test session (the ConvNeXt one serves both its own test and the UperNet transfer)."""
    configs = DEMO_CONFIGS
    iters = DEMO_ITERS
    repo = REPO

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory
        self._done = {}

    def __call__(self, name: str) -> dict:
        if name not in self._done:
            self._done[name] = run_demo(name, self._factory.mktemp(f'demo_{name}'))
        return self._done[name]


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory) -> DemoRuns:
    return DemoRuns(tmp_path_factory)


def pytest_generate_tests(metafunc):
    if 'tiny_name' in metafunc.fixturenames:
        metafunc.parametrize('tiny_name', list(TINY))
    if 'demo_name' in metafunc.fixturenames:
        metafunc.parametrize('demo_name', list(DEMO_CONFIGS))

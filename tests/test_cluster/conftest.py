"""Fixtures of the GPU-cluster-readiness tests (set-up plan, launchers, overrides, resume)."""
import importlib.util
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='session')
def repo() -> str:
    return REPO


@pytest.fixture(scope='session')
def mmcv_plan():
    """tools/install/mmcv_plan.py as a module (it is a script, not part of the package)."""
    path = osp.join(REPO, 'tools', 'install', 'mmcv_plan.py')
    spec = importlib.util.spec_from_file_location('mmcv_plan_under_test', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module

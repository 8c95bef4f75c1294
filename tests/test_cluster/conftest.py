"""Fixtures of the GPU-cluster-readiness tests (set-up plan, launchers, overrides, resume)."""
import os.path as osp

import pytest
from helpers.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='session')
def repo() -> str:
    return REPO


@pytest.fixture(scope='session')
def mmcv_plan():
    """tools/install/mmcv_plan.py as a module (it is a script, not part of the package)."""
    return load_tool('install/mmcv_plan')

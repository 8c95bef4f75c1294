"""Fixtures for the config / dry-run tests: the tools/misc modules and the mini data sets."""
from types import ModuleType

import pytest
from helpers.tools import load_tool


def load_misc(name: str) -> ModuleType:
    """``tools/misc/<name>.py`` as a module."""
    return load_tool(f'misc/{name}')


@pytest.fixture(scope='session')
def misc():
    """``misc('dry_run_config')`` -> the module."""
    return load_misc


@pytest.fixture(scope='session')
def mini_data(shared_data, tmp_path_factory) -> str:
    """ImageNet / COCO / ADE20K miniatures in the real layouts, built once per session."""
    out = str(tmp_path_factory.mktemp('mini_data'))
    load_misc('make_mini_datasets').make_all(out, shared_data)
    return out


def _visualizer_classes():
    from mmengine.visualization import Visualizer
    todo, seen = [Visualizer], []
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


@pytest.fixture(autouse=True)
def _restore_global_instances():
    """A Runner leaves its DefaultScope and its named visualizer (mmdet/mmseg configs name it
    'visualizer') as process-wide instances; a later Runner in the same process would reuse
    that visualizer and write into the earlier run's (deleted) work dir.  Forget new ones."""
    import time

    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    # plain model builds here go through mmpretrain's registry, whatever scope an earlier
    # test left current (a Runner sets its own scope on top of this one)
    DefaultScope.get_instance(f'test_configs-{time.time()}', scope_name='mmpretrain')
    vis_before = {cls: set(cls._instance_dict) for cls in _visualizer_classes()}
    yield
    for name in [n for n in DefaultScope._instance_dict if n not in before]:
        DefaultScope._instance_dict.pop(name)
    for cls in _visualizer_classes():
        for name in [n for n in cls._instance_dict if n not in vis_before.get(cls, ())]:
            cls._instance_dict.pop(name)

"""Scripts under ``tools/`` as modules, for tests that call their ``main`` or helpers.

``tools/`` is not a package (its scripts are run by path, as the docs show), so a test loads
one by its path relative to ``tools/``.  Each script is loaded once per test session under
its file name, as the script's own sibling imports see it (``tools/misc/dry_run.py`` imports
``data_layout``; the test must get the same module, or its exception classes would differ).
The module is registered in ``sys.modules`` (dataclasses and pickling look it up there); two
different files of one name are refused.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .subprocesses import REPO

__all__ = ['TOOLS', 'TRAIN', 'TEST', 'TOY_REGRESSION', 'tool_path', 'load_tool']

TOOLS = REPO / 'tools'
TRAIN = TOOLS / 'train.py'
TEST = TOOLS / 'test.py'
#: the tiny regression config the tests of tools/train.py and tools/test.py run
TOY_REGRESSION = REPO / 'tests' / 'test_tools' / 'configs' / 'toy_regression.py'


def tool_path(relpath: str) -> Path:
    """``tools/<relpath>``, e.g. ``tool_path('misc/dry_run.py')``; the file must exist."""
    path = TOOLS / relpath
    if path.suffix != '.py':
        path = path.with_suffix('.py')
    if not path.is_file():
        raise FileNotFoundError(f'no tool script {path} (from {relpath!r})')
    return path


def load_tool(relpath: str) -> ModuleType:
    """Import ``tools/<relpath>`` (``.py`` optional) once and return the module."""
    path = tool_path(relpath)
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        where = getattr(loaded, '__file__', None)
        if where is None or Path(where).resolve() != path.resolve():
            raise ImportError(f'load_tool({relpath!r}): the module name {name!r} is already '
                              f'taken by {where or loaded!r}, not {path}')
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module

"""The mmmixmae package has no import cycle, lazy (function-level) imports included."""
import os.path as osp
import textwrap

from helpers.imports import import_cycles, import_graph

import mmmixmae

PACKAGE = osp.dirname(mmmixmae.__file__)


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_mmmixmae_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    # the graph sees the package's real edges, lazy ones included
    assert 'mmmixmae.checkpoint.pretrained' in graph['mmmixmae.models.backbones.mixmae_swin']
    assert 'mmmixmae.checkpoint.io' in graph['mmmixmae.compat.checkpoint_loader']
    assert len(graph) > 40
    assert import_cycles(PACKAGE) == []


def test_a_lazy_cycle_is_found(tmp_path):
    _write(tmp_path, {
        'pkg/__init__.py': '',
        'pkg/a.py': 'from .b import f\n',
        'pkg/b.py': '''
            def f():
                from pkg.a import g  # lazy: only runs when f is called
                return g
            ''',
        'pkg/c.py': 'import pkg.a\n',
    })
    assert import_cycles(str(tmp_path / 'pkg')) == [['pkg.a', 'pkg.b']]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    # pkg.x.m imports pkg.y.n, whose package __init__ imports pkg.x.k back
    _write(tmp_path, {
        'pkg/__init__.py': '',
        'pkg/x/__init__.py': 'from .k import K\n',
        'pkg/x/k.py': 'K = 1\n',
        'pkg/x/m.py': 'from ..y.n import N\n',
        'pkg/y/__init__.py': 'from ..x.m import N\n',
        'pkg/y/n.py': 'N = 2\n',
    })
    assert import_cycles(str(tmp_path / 'pkg')) == [['pkg.x.m', 'pkg.y']]

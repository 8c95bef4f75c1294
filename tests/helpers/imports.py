"""Static import graph of a package and its cycles (lazy, function-level imports included)."""
from __future__ import annotations

import ast
import os
import os.path as osp
from typing import Dict, List, Set

__all__ = ['module_files', 'import_graph', 'import_cycles']


def module_files(root: str) -> Dict[str, str]:
    """``{dotted module name: file}`` for every ``.py`` under the package folder ``root``."""
    base = osp.dirname(osp.abspath(root))
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                rel = osp.relpath(osp.join(folder, name), base)[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                out['.'.join(rel)] = osp.join(folder, name)
    return out


def _resolve(module: str, is_package: bool, level: int, target: str) -> str:
    if level == 0:
        return target
    parts = module.split('.') if is_package else module.split('.')[:-1]
    parts = parts[:len(parts) - (level - 1)]
    return '.'.join(parts + ([target] if target else []))


def _ancestors(name: str) -> List[str]:
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: str) -> Dict[str, Set[str]]:
    """Edges ``module -> modules of the package it imports`` (anywhere in the file).

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg``.  Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``: those package
    edges count too, except the top-level package and the importer's own ancestors (which
    are already being imported when it runs).
    """
    files = module_files(root)
    top = next(iter(files)).split('.')[0]
    graph: Dict[str, Set[str]] = {m: set() for m in files}
    for module, path in files.items():
        is_package = path.endswith('__init__.py')
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module or '')
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    targets.add(sub if sub in files else base)
        own = set(_ancestors(module))
        for target in targets:
            if target not in files or target == module:
                continue
            graph[module].add(target)
            graph[module].update(a for a in _ancestors(target)
                                 if a != top and a not in own and a in files)
    return graph


def import_cycles(root: str) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    graph = import_graph(root)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)

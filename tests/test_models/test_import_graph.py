"""The modules of ``mmseg_kdas.models`` import one another without a cycle.

The converters (``models/utils/ckpt_convert.py``) depend on the models
they convert for; no model imports them. Read from the source (every
import, at module level or inside a function), so a cycle hidden by an
import deferred into a function counts too.
"""
import ast
import os
import os.path as osp
from typing import Dict, Set

from conftest import ROOT

PACKAGE = 'mmseg_kdas.models'


def _modules() -> Dict[str, str]:
    top = osp.join(ROOT, *PACKAGE.split('.'))
    modules = {}
    for folder, _, files in os.walk(top):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                module = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                modules[module.removesuffix('.__init__')] = path
    return modules


def _imports(module: str, path: str, modules: Dict[str, str]) -> Set[str]:
    """The modules of the package that ``module`` imports.

    An import of ``a.b.c`` also runs the ``__init__`` of the packages
    ``a.b`` below :data:`PACKAGE` (``mmseg_kdas.models`` itself imports all
    of its subpackages, and is left out), unless ``module`` is inside them
    (they then ran first).
    """
    is_package = path.endswith('__init__.py')
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = module if is_package else module.rsplit('.', 1)[0]
            if node.level:
                parts = base.split('.')[:len(base.split('.')) - node.level +
                                        1]
                base = '.'.join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = [
                f'{base}.{alias.name}'
                if f'{base}.{alias.name}' in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            parts = target.split('.')
            for i in range(len(PACKAGE.split('.')) + 1, len(parts) + 1):
                name = '.'.join(parts[:i])
                if name in modules and not (module + '.').startswith(
                        name + '.'):
                    found.add(name)
    return found


def _cycle(graph: Dict[str, Set[str]]):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: Dict[str, int] = {}  # 1: on the path, 2: done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_models():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    cycle = _cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_the_models_do_not_import_the_converters():
    modules = _modules()
    for module, path in modules.items():
        if module.startswith(tuple(
                f'{PACKAGE}.{sub}'
                for sub in ('backbones', 'decode_heads', 'losses', 'necks'))):
            deps = _imports(module, path, modules)
            assert f'{PACKAGE}.utils.ckpt_convert' not in deps, module
            assert f'{PACKAGE}.utils' not in deps, module

"""The import graph of ``mmseg_kdas``: its layers, and no cycle in the models.

Layers, from the bottom: ``mmseg_kdas.teacher_cache`` imports nothing of
``mmseg_kdas.models`` or ``mmseg_kdas.engine``; ``mmseg_kdas.models``
imports nothing of ``mmseg_kdas.engine``. "Nothing" counts what an import
runs in turn: a module of a lower layer must not reach a higher one through
any chain of imports. Within the models, the converters
(``models/utils/ckpt_convert.py``) depend on the models they convert for;
no model imports them, and the models import one another without a cycle.

Read from the source (every import, at module level or inside a function),
so an import deferred into a function counts too.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Optional, Set

from conftest import ROOT

TOP = 'mmseg_kdas'
PACKAGE = 'mmseg_kdas.models'
# (package, packages it must not reach)
LAYERS = (
    ('mmseg_kdas.teacher_cache', ('mmseg_kdas.models', 'mmseg_kdas.engine')),
    ('mmseg_kdas.models', ('mmseg_kdas.engine', )),
)


def _modules(package: str) -> Dict[str, str]:
    top = osp.join(ROOT, *package.split('.'))
    modules = {}
    for folder, _, files in os.walk(top):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                module = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                modules[module.removesuffix('.__init__')] = path
    return modules


def _imports(module: str, path: str, modules: Dict[str, str],
             package: str) -> Set[str]:
    """The modules of ``package`` that ``module`` imports.

    An import of ``a.b.c`` also runs the ``__init__`` of the packages
    ``a.b`` below ``package`` (``package`` itself imports all of its
    subpackages, and is left out), unless ``module`` is inside them (they
    then ran first).
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
            for i in range(len(package.split('.')) + 1, len(parts) + 1):
                name = '.'.join(parts[:i])
                if name in modules and not (module + '.').startswith(
                        name + '.'):
                    found.add(name)
    return found


def _graph(package: str) -> Dict[str, Set[str]]:
    modules = _modules(package)
    return {m: _imports(m, p, modules, package) for m, p in modules.items()}


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


def _inside(module: str, packages) -> bool:
    return any((module + '.').startswith(p + '.') for p in packages)


def _chain_to(graph: Dict[str, Set[str]], start: str,
              forbidden) -> Optional[List[str]]:
    """The imports from ``start`` to a module of ``forbidden``, or None."""
    parent = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        if _inside(node, forbidden):
            chain = []
            while node is not None:
                chain.append(node)
                node = parent[node]
            return chain[::-1]
        for dep in sorted(graph[node]):
            if dep not in parent:
                parent[dep] = node
                queue.append(dep)
    return None


def test_no_import_cycle_in_the_models():
    cycle = _cycle(_graph(PACKAGE))
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_the_models_do_not_import_the_converters():
    modules = _modules(PACKAGE)
    for module, path in modules.items():
        if module.startswith(tuple(
                f'{PACKAGE}.{sub}'
                for sub in ('backbones', 'decode_heads', 'losses', 'necks'))):
            deps = _imports(module, path, modules, PACKAGE)
            assert f'{PACKAGE}.utils.ckpt_convert' not in deps, module
            assert f'{PACKAGE}.utils' not in deps, module


def test_a_layer_imports_nothing_of_the_layers_above():
    graph = _graph(TOP)
    for layer, above in LAYERS:
        modules = [m for m in graph if _inside(m, (layer, ))]
        assert modules, f'{layer} has no modules'
        for module in modules:
            chain = _chain_to(graph, module, above)
            assert chain is None, (f'{layer} imports {chain[-1]}: ' +
                                   ' -> '.join(chain))

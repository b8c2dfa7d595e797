"""The package's layers: imports point down only, and every module imports on its own.

The layers, bottom-up (a module may import its own layer and those below, never above):
"""

import ast
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "adjit")

LAYERS = [
    ("foundations", ["adjit.errors", "adjit.config", "adjit.tree", "adjit.collector"]),
    ("IR, rule tables, symbolic zeros", ["adjit.ir"]),
    ("tracing", ["adjit.trace"]),
    ("primitives", ["adjit.primitives"]),
    ("AD and batching", ["adjit.ad", "adjit.batching"]),
    ("NumPy layer", ["adjit.numpy", "adjit.scipy"]),
    ("passes", ["adjit.passes"]),
    ("primitives carrying graphs", ["adjit.control", "adjit.custom"]),
    ("backends", ["adjit.backend"]),
    ("dispatch", ["adjit.dispatch", "adjit.freevalues"]),
    ("public API", ["adjit.api"]),
    ("on top", ["adjit.jacobians", "adjit.inspect", "adjit.testing", "adjit.primitives.doc",
                "adjit.aot", "adjit.dask", "adjit"]),
    ("command line", ["adjit.__main__"]),
]
__doc__ += "\n".join(f"    {i}. {name}: {', '.join(mods)}" for i, (name, mods) in
                     enumerate(LAYERS))


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for fn in files:
            if fn.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, fn), ROOT)[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = os.path.join(folder, fn)
    return found


MODULES = _modules()


def layer_of(module: str) -> int:
    """The layer of the longest prefix listed (``adjit.primitives.doc`` before
    ``adjit.primitives``)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def imports_of(module: str) -> set[str]:
    """The package's modules that ``module`` imports, at module level or inside functions."""
    path = MODULES[module]
    is_pkg = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_pkg else module.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def test_every_module_has_a_layer_and_imports_point_down():
    upward = []
    for module in MODULES:
        for target in imports_of(module):
            # A package's __init__ gathers its submodules: importing them is not upward.
            if target.startswith(module + "."):
                continue
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} "
                              f"(layer {layer_of(target)})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t])
                                     if t in path else t)
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


# Importing a submodule runs the package's __init__ first, which imports everything; a stub
# package object stands in for it, so each module gets only what it imports itself.
_STUB = """
import importlib, sys, types
pkg = types.ModuleType("adjit")
pkg.__path__ = [{package!r}]
sys.modules["adjit"] = pkg
for name in {names!r}:
    importlib.import_module(name)
"""


def _import_alone(names) -> subprocess.CompletedProcess:
    code = _STUB.format(package=PACKAGE, names=list(names))
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


def test_each_module_imports_on_its_own_in_a_fresh_interpreter():
    names = sorted(m for m in MODULES if m != "adjit")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: (n, _import_alone([n])), names))
    failures = [f"{n}:\n{r.stderr[-1500:]}" for n, r in results if r.returncode]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modules_import_in_any_order(seed):
    names = sorted(m for m in MODULES if m != "adjit")
    random.Random(seed).shuffle(names)
    result = _import_alone(names)
    assert result.returncode == 0, result.stderr[-3000:]

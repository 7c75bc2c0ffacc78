"""The package's layers: imports run one way, there are no cycles, and every module imports.

Layers, lowest first: the version, the numerical core, the four physical
systems (which never import each other), studies, views (plotting and
reports), the command line.  The package's ``__init__`` re-exports from all of
them and is imported by none.  The test reads the imports from the source
(module level and inside functions alike), so it also sees lazy imports.
"""

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "phasekit"

SYSTEMS = ("committee", "propagation", "deep_linear", "lazy_training")


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def layer(module: str) -> tuple[int, str]:
    """(rank, group) of a module; imports may only go to a lower rank or stay in the group."""
    parts = module.split(".")
    if module == "phasekit":
        return 9, "top"
    head = parts[1]
    if head == "_version":
        return 0, "version"
    if head == "core":
        return 1, "core"
    if head in SYSTEMS:
        return 2, head
    if head == "study":
        return 3, "study"
    if head == "plotting":
        return 4, "plotting"
    if head == "report":
        return 5, "report"
    if head in ("cli", "__main__"):
        return 6, "cli"
    raise AssertionError(f"module {module} is in no layer")


def imports_of(module: str, path: Path) -> set[str]:
    """phasekit modules imported anywhere in ``path`` (resolved to files of the package)."""
    tree = ast.parse(path.read_text())
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - (node.level - 1)]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "phasekit":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in MODULES else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "phasekit")
    return {m for m in out if m != module}


# Transitional exceptions (to be removed as the reshaping proceeds).
_TRANSITIONAL: set[tuple[str, str]] = set()


def _transitional(module: str, dep: str) -> bool:
    return (module, dep) in _TRANSITIONAL


GRAPH = {m: {d for d in imports_of(m, f) if not _transitional(m, d)} for m, f in MODULES.items()}


def test_every_import_points_down_the_layers():
    bad = []
    for module, deps in GRAPH.items():
        rank, group = layer(module)
        for dep in deps:
            if dep not in MODULES:
                bad.append(f"{module} imports {dep}, which is not a module of the package")
                continue
            if dep == "phasekit":
                if module != "phasekit.__main__":
                    bad.append(f"{module} imports the package face 'phasekit'")
                continue
            # a package's own face may be imported by its members only through explicit submodules
            r, g = layer(dep)
            if g == group or r < rank:
                continue
            bad.append(f"{module} (layer {group}) imports {dep} (layer {g})")
    assert not bad, "\n".join(bad)


def test_there_are_no_import_cycles():
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_test_sees_violations():
    # the checks above can fail: a system importing the study layer is against the order
    assert layer("phasekit.committee.model") < layer("phasekit.study.runner")
    rank, group = layer("phasekit.committee.model")
    r, g = layer("phasekit.study.runner")
    assert not (g == group or r < rank)
    assert "phasekit.core.activations" in GRAPH["phasekit.committee.model"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    assert isinstance(importlib.import_module(module), types.ModuleType)


def test_no_public_name_hides_a_submodule():
    clashes = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        pkg = importlib.import_module(module)
        for child in path.parent.iterdir():
            name = child.stem if child.suffix == ".py" else child.name
            if name.startswith("_") or not (child.suffix == ".py" or (child / "__init__.py").exists()):
                continue
            sub = importlib.import_module(f"{module}.{name}")
            if getattr(pkg, name) is not sub:
                clashes.append(f"{module}.{name} is {type(getattr(pkg, name)).__name__}, not the submodule")
    assert not clashes, "\n".join(clashes)


def test_import_loads_no_plotting_or_cluster_library():
    # matplotlib and dask cost most of an import; only the views and the parallel backends need them.
    code = ("import sys, phasekit\n"
            "heavy = [m for m in ('matplotlib', 'dask', 'distributed') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "phasekit.write_report\n"
            "assert 'matplotlib' in sys.modules\n")
    _runs_in_a_fresh_interpreter(code)


def _runs_in_a_fresh_interpreter(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_import_defers_the_study_layer_and_the_smaller_systems():
    # They load on first use of one of their names; every public name still resolves.
    code = ("import sys, phasekit\n"
            "lazy = ('phasekit.study', 'phasekit.deep_linear', 'phasekit.lazy_training', 'phasekit.propagation')\n"
            "early = [m for m in lazy if m in sys.modules]\n"
            "assert not early, early\n"
            "from phasekit import sweep\n"
            "assert 'phasekit.study' in sys.modules and sweep is phasekit.study.sweep\n"
            "missing = [n for n in phasekit.__all__ if not hasattr(phasekit, n)]\n"
            "assert not missing, missing\n"
            "assert phasekit.propagation is sys.modules['phasekit.propagation']\n"
            "assert set(phasekit.__all__) <= set(dir(phasekit))\n")
    _runs_in_a_fresh_interpreter(code)

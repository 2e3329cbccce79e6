"""The package's folders are its layers: imports go one way, and there is no import cycle.

The test reads every module's source (late imports inside functions included), resolves each
``import`` to a module of ``pyrovae``, and checks two things:

- the module graph has no cycle (a package's ``__init__`` counts as a module of its own);
- every import between top-level units (``pyrovae.data``, ``pyrovae.train``, ...) is allowed by
  :data:`ALLOWED`, which is the layer order written out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pyrovae"

#: unit -> the units it may import from. Data flows one way:
#: data -> parts -> models -> infer -> evaluate -> train -> inspect -> kl, plots apart, cli on top.
ALLOWED: dict[str, set[str]] = {
    "_util": set(),
    "distributions": {"_util"},
    "data": {"_util"},
    "nets": {"_util", "data"},
    "likelihoods": {"_util", "nets", "distributions"},
    "flows": {"_util", "nets"},
    "priors": {"_util", "nets", "distributions", "flows"},
    "models": {"_util", "data", "nets", "likelihoods", "flows", "priors", "distributions"},
    "infer": {"_util", "models"},
    "evaluate": {"_util", "data", "models", "infer", "distributions"},
    "train": {"_util", "data", "models", "infer", "evaluate"},
    "inspect": {"_util", "data", "models", "evaluate"},
    "kl": {"_util", "data", "nets", "priors", "likelihoods", "models", "infer", "evaluate", "train", "inspect"},
    "plots": {"_util"},
}
#: units that may import anything: the command line, the top-level package and the deprecated shims
TOP = {"cli", "__init__", "__main__", "builder", "iwae", "distributed"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _walk_runtime(tree: ast.AST):
    """Every node, except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path) -> set[str]:
    """The pyrovae modules that ``name`` imports, anywhere in its body."""
    found: set[str] = set()
    package = _package_of(name, path)
    for node in _walk_runtime(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            found.update(t for t in targets if t == "pyrovae" or t.startswith("pyrovae."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not (module == "pyrovae" or module.startswith("pyrovae.")):
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_walker_sees_late_imports_and_relative_ones():
    # cli/distributed.py imports fit relatively; the VAE module imports priors two levels up
    assert "pyrovae.train" in GRAPH["pyrovae.cli.distributed"]
    assert "pyrovae.priors" in GRAPH["pyrovae.models.vae"]
    assert len(MODULES) > 50


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n):], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_every_unit_has_a_place_in_the_layer_order():
    units = {_unit(m) for m in MODULES}
    assert units <= set(ALLOWED) | TOP, f"add {sorted(units - set(ALLOWED) - TOP)} to ALLOWED"


def test_imports_follow_the_layer_order():
    bad = []
    for m, targets in GRAPH.items():
        unit = _unit(m)
        if unit in TOP:
            continue
        for t in targets:
            other = _unit(t)
            if other != unit and other not in ALLOWED[unit]:
                bad.append(f"{m} imports {t} ({unit} may import only {sorted(ALLOWED[unit])})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_init_files_only_re_export():
    for name, path in MODULES.items():
        if path.name != "__init__.py" or name == "pyrovae":
            continue
        tree = ast.parse(path.read_text())
        kinds = {type(n).__name__ for n in tree.body} - {"Import", "ImportFrom", "Expr", "Assign"}
        assert not kinds, f"{path} defines {kinds}; an __init__ only re-exports"
        assigned = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
        assert assigned in ([], ["__all__"]), f"{path} assigns {assigned}; only __all__ belongs there"
        if any(isinstance(n, ast.ImportFrom) for n in tree.body):
            assert assigned == ["__all__"], f"{path} re-exports without an explicit __all__"


# --- size limits (issue 12): modules <= 400 lines, functions <= 80 lines, fit < 40, docstrings not counted


def _code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = fn.end_lineno - fn.lineno + 1
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _functions():
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT.parent), node


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(ROOT.parent)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    long = {path: n for path, n in sizes.items() if n > 400}
    assert not long, f"split these modules (one concept per module): {long}"


def test_no_function_is_over_80_lines_and_fit_is_under_40():
    long = {f"{p}:{fn.lineno} {fn.name}": n for p, fn in _functions() if (n := _code_lines(fn)) > 80}
    assert not long, f"split these functions: {long}"
    (fit,) = [fn for p, fn in _functions() if fn.name == "fit" and p.name == "fitting.py"]
    assert _code_lines(fit) < 40, f"fit is {_code_lines(fit)} lines without its docstring; keep it a thin wrapper"
    assert ast.get_docstring(fit) and len(ast.get_docstring(fit).splitlines()) > 20, "keep fit's full docstring"

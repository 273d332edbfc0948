"""The package's shape: no import cycles, and each stage says what it takes and gives."""

from __future__ import annotations

import ast
from pathlib import Path

import vpbatch

PACKAGE = Path(vpbatch.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, lazy (function-level) ones included, except under `if TYPE_CHECKING:`."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if _is_type_checking(node):
            todo.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The vpbatch modules `path` imports anywhere in its body (lazy imports included)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


# The subpackages bottom to top: each imports only those before it (vpbatch/__init__ says so).
ORDER = ["errors", "transport", "benchmark", "config", "log", "sim", "providers", "scoring",
         "sweep", "report", "api", "cli", "demos"]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Top-level subpackage (or module) -> the others it imports."""
    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        if _top(mod) in ("", "__main__"):
            continue  # vpbatch/__init__ imports lazily by name, __main__ only starts cli
        out.setdefault(_top(mod), set()).update(
            _top(d) for d in deps if _top(d) not in ("", _top(mod)))
    return out


def test_no_subpackage_imports_another_that_imports_it_back() -> None:
    cycles = find_cycles(package_graph(import_graph()))
    assert cycles == [], "package cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_each_subpackage_imports_only_those_below_it_in_the_documented_order() -> None:
    graph = package_graph(import_graph())
    assert sorted(graph) == sorted(ORDER), "add the new subpackage to ORDER (and the docstring)"
    upward = [f"{p} -> {d}" for p, deps in graph.items() for d in deps
              if ORDER.index(d) > ORDER.index(p)]
    assert upward == [], "imports against the stage order: " + ", ".join(sorted(upward))


def test_the_package_docstring_lists_the_stages_in_order() -> None:
    doc = vpbatch.__doc__ or ""
    found = sorted(ORDER, key=lambda p: doc.find(f"`{p}`"))
    assert all(f"`{p}`" in doc for p in ORDER) and found == ORDER


def test_a_type_checking_import_is_not_an_edge(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
                   "def f():\n    import b\n")
    assert _imports(src, "m", {"a", "b"}) == {"b"}


def test_every_package_opens_with_a_docstring_of_what_its_stage_takes_and_gives() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60 and "TODO" not in doc, f"{init} needs a docstring"

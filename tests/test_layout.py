"""The repository's shape: imports flow one way between the top-level files, no project import
hides inside a function, and no line is over 120 characters."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(f for f in os.listdir(ROOT) if f.endswith(".py"))
MODULES = {f[:-3] for f in FILES}


def _imports(path):
    """(imported project modules, those imported inside a function or class) of one file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top, nested = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    nested |= _names(sub)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top |= _names(node)
    return top & MODULES, nested & MODULES


def _names(node):
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    return {node.module.split(".")[0]} if node.module and node.level == 0 else set()


def _topological_order(graph):
    """Modules in an order where each comes after what it imports; AssertionError on a cycle."""
    order, state = [], {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
        state[m] = "open"
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = "done"
        order.append(m)
    for m in sorted(graph):
        visit(m, [])
    return order


def test_project_imports_are_acyclic_and_at_module_level():
    graph = {}
    for f in FILES:
        deps, nested = _imports(os.path.join(ROOT, f))
        assert not nested, f"{f} imports {sorted(nested)} inside a function"
        graph[f[:-3]] = deps - {f[:-3]}
    order = _topological_order(graph)
    assert order.index("grader") < order.index("reward") < order.index("eval") < order.index("bcr")


def test_the_checks_see_a_cycle_and_a_nested_import(tmp_path):
    (tmp_path / "a.py").write_text("import os\nimport toy\n\ndef f():\n    import os\n    import reward\n")
    assert _imports(str(tmp_path / "a.py")) == ({"toy", "reward"}, {"reward"})
    with pytest.raises(AssertionError, match="import cycle: a -> b -> a"):
        _topological_order({"a": {"b"}, "b": {"a"}})


def test_no_line_over_120_characters():
    for folder in (ROOT, os.path.join(ROOT, "tests")):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".py"):
                for i, line in enumerate(open(os.path.join(folder, f), encoding="utf-8"), 1):
                    assert len(line.rstrip("\n")) <= 120, f"{f}:{i} has {len(line.rstrip())} characters"

"""Functions in neuroexec/ stay short and take few arguments (STYLE.md: "functions short"): none is over
60 lines (end_lineno - lineno, read with ast) nor takes more than 8 parameters (self/cls not counted).
The ones not yet split are listed below; the lists may only shrink: a function split or slimmed must
leave them, so the test fails on a stale entry as on a new offender."""

from __future__ import annotations

import ast
from pathlib import Path

import neuroexec

PACKAGE = Path(neuroexec.__file__).parent
MAX_LINES = 60
MAX_PARAMETERS = 8

# "<module path>:<function>" -> why it still exceeds the limit. Only these remain; none may be added.
LONG: dict[str, str] = {}
MANY_PARAMETERS: dict[str, str] = {
    # A torch Dataset's constructor: the keyword options of the images it reads (tests, steps and
    # inference call it with keywords); a frozen options object would only move the list.
    "data/datasets.py:PatchDataset.__init__": "PatchDataset's keyword options",
    # The spec's [datasets.<d>.generate] fields plus root, reporter and grid, as keywords, by ~30 callers.
    "data/synthetic.py:generate_atrophy_dataset": "the generate table's fields",
}


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method of the package as ("<module path>:<Class.>name", node)."""
    out = []

    def visit(node: ast.AST, where: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{where}:{prefix}{child.name}", child))
                visit(child, where, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, where, f"{prefix}{child.name}.")
            else:
                visit(child, where, prefix)

    for path in sorted(PACKAGE.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), path.relative_to(PACKAGE).as_posix(), "")
    return out


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
    return len([n for n in names if n.arg not in ("self", "cls")])


def long_functions() -> dict[str, int]:
    return {name: n.end_lineno - n.lineno for name, n in _functions() if n.end_lineno - n.lineno > MAX_LINES}


def functions_with_many_parameters() -> dict[str, int]:
    return {name: _parameters(n) for name, n in _functions() if _parameters(n) > MAX_PARAMETERS}


def test_no_function_in_neuroexec_is_over_60_lines():
    found = long_functions()
    new = {k: v for k, v in found.items() if k not in LONG}
    assert not new, f"functions over {MAX_LINES} lines (split them where a name explains a part): {new}"
    stale = sorted(set(LONG) - set(found))
    assert not stale, f"no longer over {MAX_LINES} lines: remove them from LONG: {stale}"


def test_no_function_in_neuroexec_takes_more_than_8_parameters():
    found = functions_with_many_parameters()
    new = {k: v for k, v in found.items() if k not in MANY_PARAMETERS}
    assert not new, (
        f"functions with over {MAX_PARAMETERS} parameters (pass the task or a small dataclass): {new}"
    )
    stale = sorted(set(MANY_PARAMETERS) - set(found))
    assert not stale, f"no longer over {MAX_PARAMETERS} parameters: remove them from MANY_PARAMETERS: {stale}"


def test_the_measure_counts_lines_and_parameters_as_ast_reads_them():
    source = "def f(self, a, b=1, *c, d, **e):\n" + "    x = 1\n" * 61 + "    return x\n"
    (node,) = ast.parse(source).body
    assert node.end_lineno - node.lineno == 62
    assert _parameters(node) == 5
    names = dict(_functions())  # the package is read: functions, and methods under their class
    assert "spec/checks.py:semantic_problems" in names and "training/loop.py:Trainer.loader" in names

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

# "<module path>:<function>" -> why it is still long. Argument-parser builders are one add_argument call
# per flag; the ClinicaDL spec translators one table entry per option.
LONG: dict[str, str] = {
    "cli/flags.py:add_data": "argparse flags",
    "cli/legacy_interpret.py:build_parser": "argparse flags",
    "cli/train_command.py:_add_flags": "argparse flags",
    "compat/group_spec.py:group_spec_dict": "ClinicaDL option table",
    "compat/train_spec.py:train_spec_dict": "ClinicaDL option table",
    "data/extract.py:run_extraction": "not split yet",
    "inference/interpret.py:interpret_group": "not split yet",
    "training/outputs.py:maps_parameters": "one entry per maps.json key",
    "training/run.py:train_split": "not split yet",
}
MANY_PARAMETERS: dict[str, str] = {
    "data/datasets.py:__init__": "not slimmed yet",
    "data/extract.py:extract_patches_to": "not slimmed yet",
    "data/extract.py:_outputs": "not slimmed yet",
    "data/synthetic.py:generate_atrophy_dataset": "the generate table's fields",
    "evaluation.py:_image_level": "not slimmed yet",
    "evaluation.py:write_results": "not slimmed yet",
    "training/run.py:_epochs": "not slimmed yet",
    "training/run.py:_final_results": "not slimmed yet",
}


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{where}:{node.name}", node))
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

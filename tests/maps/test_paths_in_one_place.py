"""Every MAPS path is built by neuroexec/maps/layout.py, every CAPS path by neuroexec/data/caps.py, and
neuroexec's own records folder (`.neuroexec/`) is named by neuroexec/records.py: the rest of the package
asks them. This test reads the source of neuroexec/ (ast) and fails on a MAPS, CAPS or records name
used to build a path anywhere else (`/ "maps.json"`, `f"split-{i}"` joined to a folder, a glob of
`best-*`, a tuple of file names), naming the file, the line and the literal."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from neuroexec.data.caps import CapsLayout
from neuroexec.spec import load_spec

PACKAGE = Path(__file__).resolve().parents[2] / "neuroexec"
LAYOUT_MODULES = {"maps/layout.py", "data/caps.py", "records.py"}
# ClinicaDL's split directory (`tsvtools split`, the TSV_DIRECTORY of `train`) is neither a MAPS nor a
# CAPS: its `split-<i>/` folders are named in the module that reads it.
SPLIT_DIRECTORY = "data/splits.py"

# Names of MAPS entries (both generations), CAPS entries and neuroexec's records, as path components.
MAPS_NAMES = (
    r"split-.*", r"fold-.*", r"best[-_].*", r"groups", r"tmp", r"training_logs", r"tensorboard", r"maps\.json",
    r"commandline\.json", r"environment\.txt", r"information\.log", r"caps_cohorts\.tsv",
    r"train\+validation\.tsv", r"data\.tsv", r".*\.pth\.tar", r"autoencoder_reconstruction", r"replaced",
    r"description\.log", r"tensors", r"nifti_images", r"interpret-.*", r"summary\.json",
    r".*_level_(prediction|metrics)\.tsv", r"cnn_classification", r"gradients", r"models", r"(mean|std)_.*",
    r"map\..*", r"all_models", r"profiler", r"clinicadl_.*", r".*\.pt\.trace\.json", r"mlflow\.db", r"mlruns",
    r"wandb", r"emissions\.csv", r"latent_tensors",
)  # fmt: skip
CAPS_NAMES = (
    r"subjects", r"t1_linear", r"deeplearning_prepare_data", r".*_based", r"tensor_extraction",
    r"extract_.*\.json", r"masks", r"participants\.tsv", r"neuroexec_manifest.*", r".*_patch-.*", r".*_T1w.*",
)  # fmt: skip
RECORDS_NAMES = (r"\.neuroexec", r"state\.json", r"state\.lock", r"lock(\..*)?", r"information\.lock")
NAME = re.compile("|".join(f"(?:{n})" for n in (*MAPS_NAMES, *CAPS_NAMES, *RECORDS_NAMES)))
# A whole string equal to one of these file names is a path wherever it appears (a tuple of names).
FILE_NAME = re.compile(r"\.neuroexec|[\w+-]+\.(json|tsv|txt|log|tar)")
# spec/resolve.py cannot import data/ (data depends on spec): it names the participants TSV of a generated
# dataset itself, and the last test checks that it is the one CapsLayout names.
KNOWN = {("spec/resolve.py", "participants.tsv")}
PATH_CALLS = {"glob", "rglob", "joinpath", "with_name", "with_suffix", "Path"}


def _text(node: ast.AST) -> str | None:
    """The literal text of a string constant or f-string (`{}` for each interpolated part)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _text(body[0].value) is not None:
                found.add(id(body[0].value))
    return found


def _path_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of the string literals that take part in building a path."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            out += [(node.lineno, t) for side in (node.left, node.right) if (t := _text(side)) is not None]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in PATH_CALLS:
                out += [(node.lineno, t) for arg in node.args if (t := _text(arg)) is not None]
    return out


def layout_violations(source: str, module: str) -> list[str]:
    """`module:line: literal` for each MAPS/CAPS/records name that `source` uses to build a path."""
    if module in LAYOUT_MODULES:
        return []
    tree = ast.parse(source)
    skipped = _docstrings(tree) | {
        id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values
    }
    found = set()
    for line, text in _path_literals(tree):
        parts = [p for p in text.split("/") if p]
        if module == SPLIT_DIRECTORY:
            parts = [p for p in parts if not p.startswith("split-")]
        if any(NAME.fullmatch(p) for p in parts) and (module, text) not in KNOWN:
            found.add((line, text))
    for node in ast.walk(tree):
        text = _text(node) if isinstance(node, ast.Constant) and id(node) not in skipped else None
        if (
            text is not None
            and FILE_NAME.fullmatch(text)
            and NAME.fullmatch(text)
            and (module, text) not in KNOWN
        ):
            found.add((node.lineno, text))
    return [f"{module}:{line}: {text!r}" for line, text in sorted(found)]


def test_every_maps_caps_and_records_path_is_built_by_the_layout_modules():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        problems += layout_violations(path.read_text(), module)
    assert not problems, "paths built outside maps/layout.py, data/caps.py, records.py:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(
    "line",
    [
        'p = root / "maps.json"',
        'p = root / f"split-{split}" / "best-loss"',
        'names = [p.name for p in root.glob("best-*")]',
        'p = home / ".neuroexec" / "state.json"',
        'p = caps / "subjects" / participant',
        'p = maps / "split-0/best-loss/model.pth.tar"',
        'names = ("maps.json", "commandline.json")',
        'p = folder.with_name("extract_image.json")',
    ],
)
def test_the_scan_finds_a_path_built_by_hand(line):
    assert layout_violations(line, "somewhere.py")


@pytest.mark.parametrize(
    "line",
    [
        'raise InputError(path, "no maps.json (nor a legacy commandline.json)")',
        'reporter.info(f"split-{split}: training finished")',
        'doc.setdefault("groups", {})',
        'p = base / "data" / name',
        'def f():\n    """Writes `split-<i>/best-<m>/maps.json`."""',
    ],
)
def test_the_scan_leaves_messages_keys_and_other_paths_alone(line):
    assert not layout_violations(line, "somewhere.py")


def test_the_split_directory_module_may_name_its_split_folders_and_nothing_else():
    assert not layout_violations('p = directory / f"split-{i}"', SPLIT_DIRECTORY)
    assert layout_violations('p = directory / "maps.json"', SPLIT_DIRECTORY)


def test_a_generated_dataset_reads_the_participants_tsv_its_caps_layout_names(tmp_path):
    """spec/resolve.py cannot import data/ (data depends on spec), so it names the generated CAPS's
    participants TSV itself: it must be the one CapsLayout names (and generate writes)."""
    spec = tmp_path / "spec.toml"
    spec.write_text("version = 1\n[datasets.demo]\ngenerate = { subjects = 4 }\n")
    dataset = load_spec(spec).datasets["demo"]
    assert dataset.participants == CapsLayout(dataset.caps).participants_tsv

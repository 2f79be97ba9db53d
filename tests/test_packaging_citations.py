"""Docstrings and comments of neuroexec/ and kernels/ cite files that exist: every repository path they
name (`neuroexec/...`, `kernels/...`, `spec/...`, `tests/...`, `docs/...`, `benchmarks/...`, or a module of
a neuroexec package such as `maps/layout.py`) is there, from the repository root or from neuroexec/ (the
package-relative form the code uses); a file outside the repository (`../shared/...`) is missing from a
clone, so it is never cited."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = sorted(p.name for p in (ROOT / "neuroexec").iterdir() if (p / "__init__.py").is_file())
# a path starts a word (not `.neuroexec/state.json`, not inside a longer path) and is not a template
CITATION = re.compile(
    r"(?<![\w./<{-])("
    r"\.\./shared/[\w./*-]*"
    r"|(?:neuroexec|kernels|spec|tests|docs|benchmarks)/[\w./*-]*"
    rf"|(?:{'|'.join(SUBPACKAGES)})/(?:[\w-]+/)*[\w-]+\.py"
    r")(?![\w<{])"
)


def docs_and_comments(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a module."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                line = node.body[0].lineno if node.body else 1
                yield line, docstring


def cited_paths(source: str) -> Iterator[tuple[int, str]]:
    for line, text in docs_and_comments(source):
        for match in CITATION.finditer(text):
            yield line, match.group(1).rstrip(".")


def exists(path: str) -> bool:
    if path.startswith("../"):
        return False
    return any((base / path).exists() or any(base.glob(path)) for base in (ROOT, ROOT / "neuroexec"))


def missing_citations(files: list[Path]) -> list[str]:
    return [
        f"{file.relative_to(ROOT)}:{line}: {path}"
        for file in files
        for line, path in cited_paths(file.read_text(encoding="utf-8"))
        if not exists(path)
    ]


def test_docstrings_and_comments_cite_files_that_exist():
    files = sorted([*(ROOT / "neuroexec").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")])
    cited = sum(1 for f in files for _ in cited_paths(f.read_text(encoding="utf-8")))
    assert cited > 50  # the scan sees the citations the code makes
    missing = missing_citations(files)
    assert not missing, "docstrings or comments cite files that do not exist:\n" + "\n".join(missing)


def test_the_scan_finds_a_missing_file_and_accepts_the_forms_that_exist(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Paths are built in maps/layout.py and neuroexec/maps/layout.py (spec/examples/*.toml).\n\n'
        "See neuroexec/maps/nowhere.py and ../shared/design/STYLE.md.\n"
        '"""\n\n'
        "# docs/architecture.md; tests/maps/gone_test.py; the state file .neuroexec/state.json\n"
        "def f():\n"
        '    """kernels/recon.py and a template, neuroexec/<command>/x.py."""\n'
        '    return "neuroexec/not-a-docstring.py"\n'
    )
    found = [path for _, path in cited_paths(module.read_text())]
    assert found == [
        "docs/architecture.md",
        "tests/maps/gone_test.py",
        "maps/layout.py",
        "neuroexec/maps/layout.py",
        "spec/examples/*.toml",
        "neuroexec/maps/nowhere.py",
        "../shared/design/STYLE.md",
        "kernels/recon.py",
    ]
    assert [p for p in found if not exists(p)] == [
        "tests/maps/gone_test.py",
        "neuroexec/maps/nowhere.py",
        "../shared/design/STYLE.md",
    ]

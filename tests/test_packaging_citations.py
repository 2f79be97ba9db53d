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


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def docs_and_comments(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a module."""
    if re.search(r"#.*" + CITATION.pattern, source):  # tokenizing is slow: only where a comment may cite
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.string
    stack: list[ast.AST] = [ast.parse(source)]
    while stack:  # docstrings are in the bodies of modules, classes and functions only
        node = stack.pop()
        docstring = ast.get_docstring(node, clean=False)
        if docstring:
            yield node.body[0].lineno, docstring
        stack += [child for child in node.body if isinstance(child, DOCUMENTED)]


def cited_paths(source: str) -> Iterator[tuple[int, str]]:
    for line, text in docs_and_comments(source):
        for match in CITATION.finditer(text):
            yield line, match.group(1).rstrip(".")


def exists(path: str) -> bool:
    if path.startswith("../"):
        return False
    bases = (ROOT, ROOT / "neuroexec")
    if "*" in path:
        return any(next(base.glob(path), None) is not None for base in bases)
    module = path.rsplit(".", 1)[0] + ".py"  # `spec/load.schema`: a name in spec/load.py
    return any((base / path).exists() or (base / module).is_file() for base in bases)


def citations(files: list[Path]) -> list[tuple[str, bool]]:
    """(where and what, whether it exists) of every citation of the files."""
    found = []
    for file in files:
        source = file.read_text(encoding="utf-8")
        if CITATION.search(source) is None:  # most modules cite nothing: skip parsing them
            continue
        found += [
            (f"{file.relative_to(ROOT)}:{line}: {path}", exists(path)) for line, path in cited_paths(source)
        ]
    return found


def test_docstrings_and_comments_cite_files_that_exist():
    found = citations(sorted([*(ROOT / "neuroexec").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")]))
    assert len(found) > 50  # the scan sees the citations the code makes
    missing = [where for where, ok in found if not ok]
    assert not missing, "docstrings or comments cite files that do not exist:\n" + "\n".join(missing)


def test_the_scan_finds_a_missing_file_and_accepts_the_forms_that_exist(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Paths are built in maps/layout.py and neuroexec/maps/layout.py (spec/examples/*.toml).\n\n'
        "See neuroexec/maps/nowhere.py and ../shared/design/STYLE.md.\n"
        '"""\n\n'
        "# docs/architecture.md; tests/maps/gone_test.py; the state file .neuroexec/state.json; spec/load.schema\n"
        "def f():\n"
        '    """kernels/recon.py and a template, neuroexec/<command>/x.py."""\n'
        '    return "neuroexec/not-a-docstring.py"\n'
    )
    found = [path for _, path in cited_paths(module.read_text())]
    assert found == [
        "docs/architecture.md",
        "tests/maps/gone_test.py",
        "spec/load.schema",
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

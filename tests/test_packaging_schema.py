"""One schema: the file neuroexec reads and the wheel installs (neuroexec/spec/schema.json) is the
repository's spec/schema.json; `make schema` writes the spec reference docs/spec-reference.md from it, and
the committed reference is what it writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.spec.docs import schema_markdown
from neuroexec.spec.load import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[1]


def test_the_schema_neuroexec_reads_is_the_repository_schema():
    assert SCHEMA_PATH == ROOT / "neuroexec" / "spec" / "schema.json"
    assert SCHEMA_PATH.read_bytes() == (ROOT / "spec" / "schema.json").read_bytes()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_schema_writes_the_committed_spec_reference(tmp_path):
    venv = Path(sys.prefix)  # the environment running the tests, as the Makefile's VENV
    out = tmp_path / "spec-reference.md"
    result = subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", "schema", f"VENV={venv}", f"SCHEMA_DOC={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == schema_markdown()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec-reference.md"]  # its temporary file renamed
    committed = ROOT / "docs" / "spec-reference.md"
    assert committed.is_file() and committed.read_text() == out.read_text(), (
        "docs/spec-reference.md is out of date with spec/schema.json: run `make schema`"
    )

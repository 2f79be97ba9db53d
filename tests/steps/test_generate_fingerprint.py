"""The generate step's fingerprint holds the digest of its generator's source (data/generate_kinds.py
`generator_source`): a changed generator plans the generation again (`~`, the key named), an unchanged
one does not; each kind's digest covers only the modules that write its files."""

from __future__ import annotations

import shutil
from pathlib import Path

from neuroexec.cli import main
from neuroexec.data import generate_kinds
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.steps import generate as generate_step

SPEC = 'version = 1\n[datasets.d]\ncaps = "caps"\ngenerate = { subjects = 4, resolution_mm = 8 }\n'


def test_a_changed_generator_source_generates_again(tmp_path, monkeypatch):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    assert main(["apply", str(spec), "--quiet"]) == 0
    assert [p.action for p in make_plan(load_spec(spec)).steps] == ["="]
    today = generate_kinds.generator_source("atrophy")
    monkeypatch.setattr(generate_step, "generator_source", lambda kind: "0123456789abcdef")
    (planned,) = make_plan(load_spec(spec)).steps
    assert planned.action == "~"
    assert any("generator_source" in r and today in r and "0123456789abcdef" in r for r in planned.reasons)


def test_the_digest_follows_the_modules_of_the_kind(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(Path(generate_kinds.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    kinds = ("atrophy", "anatomy", "trivial", "shepplogan", "artifacts")
    before = {kind: generate_kinds.generator_source(kind) for kind in kinds}
    monkeypatch.setattr(generate_kinds, "GENERATOR_DIR", copy)
    assert {kind: generate_kinds.generator_source(kind) for kind in kinds} == before  # same files
    with open(copy / "anatomy.py", "a") as f:
        f.write("EDITED = 1  # the anatomy generator, edited\n")
    after = {kind: generate_kinds.generator_source(kind) for kind in kinds}
    changed = {kind for kind in kinds if after[kind] != before[kind]}
    assert changed == {"anatomy", "trivial", "artifacts"}  # the kinds whose masks anatomy.py draws


def test_comments_docstrings_and_formatting_keep_the_digest_code_moves_it(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(Path(generate_kinds.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(generate_kinds, "GENERATOR_DIR", copy)
    before = generate_kinds.generator_source("atrophy")
    source = (copy / "synthetic.py").read_text()
    assert '"""' in source and "def " in source
    edited = source.replace('"""', '"""An edited docstring. ', 1).replace("\ndef ", "\n# a comment\n\n\ndef ")
    (copy / "synthetic.py").write_bytes(edited.replace("\n", "\r\n").encode())
    assert generate_kinds.generator_source("atrophy") == before
    (copy / "synthetic.py").write_text(source + "\nEDITED = 1\n")
    assert generate_kinds.generator_source("atrophy") != before
    (copy / "synthetic.py").write_text(source)
    (copy / "caps.py").write_text((copy / "caps.py").read_text() + "\nEDITED = 1\n")
    assert generate_kinds.generator_source("atrophy") != before  # caps.py names the generated files

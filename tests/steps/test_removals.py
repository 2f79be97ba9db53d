"""Deletions are planned (rule 2): whatever apply removes is a `-` line of the plan with its count of
files first, and apply removes exactly that: a synthetic dataset generated again, and ClinicaDL's
`predict MAPS GROUP --split 1 --overwrite`, which replaces split 1's results of the group only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from neuroexec.cli import main
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_json, render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.compat.conftest import make_clinicadl_maps, tiny_data  # noqa: F401

SPEC = """
version = 1
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = {subjects}, resolution_mm = 8, seed = 1 }}
"""
GENERATE = "dataset.demo.generate"


def write(tmp_path: Path, subjects: int) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(subjects=subjects))
    return path


def apply_spec(path: Path) -> None:
    apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)))


def files_under(*paths: Path) -> set[Path]:
    return {f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()}


def test_generating_again_plans_the_removal_of_the_old_dataset_with_its_file_count(tmp_path):
    apply_spec(write(tmp_path, subjects=8))
    caps = tmp_path / "data/demo"
    old = files_under(caps / "subjects", caps / "masks", caps / "participants.tsv")
    plan = make_plan(load_spec(write(tmp_path, subjects=4)))
    (step,) = [p for p in plan.steps if p.step.id == GENERATE]
    assert step.action == "~" and [r.files() for r in step.removals] == [len(old)]
    text = render_text(plan)
    line = f"    - the synthetic dataset demo generated before: subjects, masks, participants.tsv ({len(old)} files)"
    assert line in text.splitlines()
    assert text.endswith(f"; {len(old)} files to remove.")
    data = json.loads(render_json(plan))
    (removal,) = data["steps"][0]["removals"]
    assert removal["files"] == len(old) and data["summary"]["files_to_remove"] == len(old)
    assert sorted(removal["paths"]) == sorted(
        str(caps / n) for n in ("subjects", "masks", "participants.tsv")
    )
    assert files_under(caps) >= old  # planning removes nothing
    apply(plan, RunContext(reporter=Reporter(quiet=True)))
    assert sorted(p.name for p in (caps / "subjects").iterdir()) == [f"sub-000{i}" for i in range(4)]
    assert len(pd.read_csv(caps / "participants.tsv", sep="\t")) == 4


def test_an_up_to_date_step_plans_no_removal(tmp_path):
    path = write(tmp_path, subjects=4)
    apply_spec(path)
    plan = make_plan(load_spec(path))
    assert all(p.action == "=" and not p.removals for p in plan.steps)
    assert "to remove" not in render_text(plan)


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_predict_one_split_with_overwrite_replaces_only_that_splits_results(tmp_path, tiny_data, capsys):  # noqa: F811
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    run = ["--no-gpu", "--n_proc", "0"]
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    assert main(["predict", str(maps), "test", *data, *run, "--quiet"]) == 0
    assert main(["interpret", str(maps), "test", "grad", "--save_individual", *run, "--quiet"]) == 0
    split0, split1 = maps / "split-0/best-loss/test", maps / "split-1/best-loss/test"
    before0, before1 = contents(split0), contents(split1)
    assert "interpret-grad/summary.json" in before0 and "interpret-grad/summary.json" in before1
    capsys.readouterr()
    # The same sessions from the per-diagnosis folder: the group is redefined from another file.
    again = [
        "--caps_directory",
        str(tiny_data["test_caps"]),
        "--participants_tsv",
        str(tiny_data["test_by_diagnosis"]),
    ]
    assert main(["predict", str(maps), "test", *again, "--split", "1", "--overwrite", *run]) == 0
    out = capsys.readouterr().out
    removal = f"    - results of group test, split 1 (replaced: overwrite = true): split-1/best-loss/test ({len(before1)} files)"
    assert removal in out.splitlines() and "split 0" not in out
    assert contents(split0) == before0  # split 0's predictions and saliency maps are untouched
    after1 = contents(split1)
    assert not (split1 / "interpret-grad").exists()  # removed with split 1's results, as ClinicaDL does
    assert set(after1) == {k for k in before1 if "/" not in k}  # split 1's predictions, computed again


def test_predict_one_split_with_overwrite_on_new_sessions_keeps_the_other_split_marked_stale(
    tmp_path,
    tiny_data,  # noqa: F811
    capsys,
):
    from neuroexec.report import report

    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    run = ["--no-gpu", "--n_proc", "0"]
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    assert main(["predict", str(maps), "test", *data, *run, "--quiet"]) == 0
    assert main(["interpret", str(maps), "test", "grad", "--save_individual", *run, "--quiet"]) == 0
    split0, split1 = maps / "split-0/best-loss/test", maps / "split-1/best-loss/test"
    before0 = contents(split0)
    capsys.readouterr()
    new = [*data, "--diagnoses", "AD", "--split", "1", "--overwrite"]  # 2 of the 4 sessions
    assert main(["predict", str(maps), "test", *new, *run]) == 0
    out = capsys.readouterr().out
    assert "keeps split-0/best-loss/test: computed on the group's old data" in out
    assert "- results of group test, split 1 (replaced: overwrite = true)" in out and "split 0 (" not in out
    assert contents(split0) == before0  # as ClinicaDL 1.x: only split 1's results are replaced
    table = pd.read_csv(split1 / "test_image_level_prediction.tsv", sep="\t")
    assert len(table) == 2 and not (split1 / "interpret-grad").exists()
    text = report(load_spec(maps / ".neuroexec/predict-test.toml"))
    stale = [line for line in text.splitlines() if "STALE" in line]
    assert len(stale) == 1 and "predict split 0 again" in stale[0]
    # Predicting split 0 again (same new data) clears the mark.
    assert main(["predict", str(maps), "test", *run, "--quiet"]) == 0
    assert "STALE" not in report(load_spec(maps / ".neuroexec/predict-test.toml"))
    assert len(pd.read_csv(split0 / "test_image_level_prediction.tsv", sep="\t")) == 2

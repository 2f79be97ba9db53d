"""`report` marks every result whose step the plan does not show `=` as STALE, with the plan's own
reasons: a pretrained model's model.pth.tar replaced (or a NaN model whose predict failed) leaves the
group's old metrics and maps on disk, and report must not show them as what the MAPS's models give."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.errors import StepFailed
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.report import report
from neuroexec.spec import load_spec

TRAINED = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 6, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
"""

# Another project using a copy of cnn's MAPS as it is (a pretrained model) on a copy of the other CAPS.
PRETRAINED = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.other]
caps = "other"
participants = "other/participants.tsv"
[models.pre]
maps = "pre"
[groups.test]
dataset = "other"
models = ["pre"]
interpret = [{ name = "grad", target = "AD" }]
"""

CKPT = "pre/split-0/best-loss/model.pth.tar"
STALE = "STALE: input split-0/best-loss/model.pth.tar changed; apply recomputes it"


def run(path: Path) -> list[str]:
    return apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True))).ran


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    (folder / "spec.toml").write_text(TRAINED)
    run(folder / "spec.toml")
    return folder


@pytest.fixture
def pretrained(tmp_path: Path, trained: Path) -> Path:
    """The pretrained project, its group predicted and interpreted."""
    shutil.copytree(trained / "maps" / "cnn", tmp_path / "pre", ignore=shutil.ignore_patterns(".neuroexec"))
    shutil.copytree(
        trained / "data" / "other", tmp_path / "other", ignore=shutil.ignore_patterns(".neuroexec")
    )
    path = tmp_path / "spec.toml"
    path.write_text(PRETRAINED)
    run(path)
    return path


def alter_model(folder: Path, change) -> None:
    """Replace the pretrained model's file by another model: its weights passed through `change`."""
    checkpoint = torch.load(folder / CKPT, weights_only=True)
    checkpoint["model"] = {
        k: change(v) if v.is_floating_point() else v for k, v in checkpoint["model"].items()
    }
    torch.save(checkpoint, folder / CKPT)


def result_lines(text: str) -> list[str]:
    """The report's lines from the group's metrics on (metrics, maps and their marks)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("group test:"))
    return [line.strip() for line in lines[start:]]


def test_replaced_model_marks_its_results_stale_until_apply(pretrained):
    assert "STALE" not in report(load_spec(pretrained))
    alter_model(pretrained.parent, lambda w: w + 0.05)
    lines = result_lines(report(load_spec(pretrained)))
    assert lines[0].startswith("group test: ") and lines[1] == STALE  # the predictions' metrics
    assert lines[2].startswith("interpret-grad: ") and lines[3] == STALE  # the saliency maps
    run(pretrained)
    assert "STALE" not in report(load_spec(pretrained))


def test_failed_predict_of_a_nan_model_leaves_its_old_results_marked(pretrained):
    alter_model(pretrained.parent, lambda w: torch.full_like(w, float("nan")))
    with pytest.raises(StepFailed):
        run(pretrained)
    lines = result_lines(report(load_spec(pretrained)))
    assert lines.count(STALE) == 2  # the old metrics and maps are still there, and marked


def test_metrics_tables_written_before_the_auc_stay_current(pretrained):
    """The AUC column enters no fingerprint: tables without it (an older neuroexec's) plan as `=`."""
    tables = sorted(pretrained.parent.joinpath("pre").rglob("*_metrics.tsv"))
    assert {t.parent.name for t in tables} >= {"validation", "test"}
    for table in tables:
        frame = pd.read_csv(table, sep="\t")
        frame.drop(columns="AUC").to_csv(table, sep="\t", index=False, na_rep="N/A")
    assert {p.action for p in make_plan(load_spec(pretrained)).steps} == {"="}
    assert "STALE" not in report(load_spec(pretrained))

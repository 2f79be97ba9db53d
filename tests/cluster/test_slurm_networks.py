"""`neuroexec apply SPEC --slurm` of a multi-network model against the real one-node SLURM
(tests/cluster/slurm.py): the data job, an array of one task per network (`--target
'model.mn.train[split-0,network-k]'`), then the split's task (`afterok` on the networks), which only
publishes (that the models are those of one sequential apply: tests/training/test_network_targets.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import UP_TO_DATE, make_plan
from neuroexec.spec import load_spec
from tests.cluster.slurm import Slurm
from tests.training.training_specs import run_apply

SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
seed = 0
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[models.mn]
maps = "maps/mn"
dataset = "demo"
architecture = "TinyCNN"
mode = "slice"
multi_network = true
slice = { direction = 0, discarded = [9, 10] }
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
"""
NETWORKS = 2  # the 21 sagittal slices at 8 mm, less 9 and 10 at the ends


def test_networks_train_as_array_tasks_then_the_split_publishes(
    slurm_clean: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**slurm_clean.env, "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)  # this process submits; the jobs get its environment
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    run_apply(spec, target=["dataset.*", "model.mn.split"])  # here: the SLURM jobs are the trainings only
    assert main(["apply", str(spec), "--slurm"]) == 0
    jobs = json.loads((tmp_path / ".neuroexec/slurm/spec/jobs.json").read_text())["jobs"]
    assert [(job["name"], job["tasks"]) for job in jobs] == [
        ("train-mn-networks", [[f"model.mn.train[split-0,network-{k}]"] for k in range(NETWORKS)]),
        ("train-mn", [["model.mn.train[split-0]"]]),
    ]
    assert jobs[1]["after"] == [jobs[0]["id"]]
    states = {job["name"]: slurm_clean.wait(job["id"], timeout=240) for job in jobs}
    assert set(states.values()) == {"COMPLETED"}, (states, slurm_clean.logs())
    maps = MapsLayout(tmp_path / "maps/mn")
    assert [k for k, _ in maps.best_network_models(0, "loss")] == list(range(NETWORKS))
    log = maps.information_log.read_text()
    assert log.count("training started") == NETWORKS  # each network by its own task, once
    assert f"split-0: the {NETWORKS} networks are trained" in log  # the split's task only published
    assert {p.action for p in make_plan(load_spec(spec)).steps} == {UP_TO_DATE}

"""`apply --slurm` of a multi-network model: an array of one task per network of each split, then the
split's array (`afterok`), which finds its networks trained and publishes, then the evaluations as for
any training. No SLURM needed: the jobs, scripts and `plan --slurm` output only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.cluster import slurm
from neuroexec.cluster.jobs import make_jobs
from neuroexec.cluster.ledger import JobRecord, Ledger, jobs_file
from neuroexec.cluster.script import script_text
from neuroexec.cluster.status import render, status
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.training.resume import mark_network_done

SPEC = """
version = 1
[compute]
workers = 0
[datasets.demo]
caps = "data/demo"
generate = { subjects = 12, resolution_mm = 8, seed = 1 }
[models.mn]
maps = "maps/mn"
dataset = "demo"
architecture = "TinyCNN"
mode = "slice"
multi_network = true
slice = { direction = 0, discarded = [9, 9] }
split = { n_splits = 2 }
[groups.test]
dataset = "demo"
models = ["mn"]
selection_metrics = ["loss"]
"""
NETWORKS = 3  # the 21 sagittal slices at 8 mm, less 9 at each end


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def test_a_multi_network_training_is_a_network_array_then_a_publishing_array(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    data, networks, train, evaluate = make_jobs(make_plan(load_spec(spec)))
    assert (networks.name, networks.after, train.name) == ("train-mn-networks", ["data"], "train-mn")
    assert networks.tasks == [
        [f"model.mn.train[split-{i},network-{k}]"] for i in (0, 1) for k in range(NETWORKS)
    ]
    assert train.tasks == [["model.mn.train[split-0]"], ["model.mn.train[split-1]"]]
    assert (train.after, train.corr) == (["data", "train-mn-networks"], [])  # afterok: every network
    assert (evaluate.after, evaluate.corr) == (["data", "train-mn"], ["train-mn"])
    text = script_text(networks, spec, tmp_path / "n.log", ["40"], "python")
    assert "  5) set -- --target 'model.mn.train[split-1,network-2]' ;;" in text.splitlines()
    assert "#SBATCH --array=0-5" in text.splitlines()
    assert "#SBATCH --dependency=afterok:40:41" in script_text(
        train, spec, tmp_path / "t.log", ["40", "41"], "python"
    )


def test_finished_networks_get_no_task(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    run = ["dataset.*", "model.mn.split"]
    assert main(["apply", str(spec), "--quiet", *(a for t in run for a in ("--target", t))]) == 0
    plan = make_plan(load_spec(spec))
    task = next(p for p in plan.steps if p.step.id == "model.mn.train[split-0]").step.payload
    deps = next(p for p in plan.steps if p.step.id == "model.mn.train[split-0]").step.deps
    upstream = {d: next(p.fingerprint for p in plan.steps if p.step.id == d) or "" for d in deps}
    mark_network_done(MapsLayout(tmp_path / "maps/mn"), 0, 1, task.resume_key(upstream), {"epochs": 1})
    networks = make_jobs(make_plan(load_spec(spec)))[0]
    assert networks.tasks == [
        [f"model.mn.train[split-{i},network-{k}]"]
        for i in (0, 1)
        for k in range(NETWORKS)
        if (i, k) != (0, 1)
    ]
    for i, k in ((0, 2), (1, 0), (1, 1)):  # one network left in each split: two arrays of two tasks
        key = task.resume_key(upstream) if i == 0 else _key(plan, 1)
        mark_network_done(MapsLayout(tmp_path / "maps/mn"), i, k, key, {"epochs": 1})
    networks, train = make_jobs(make_plan(load_spec(spec)))[:2]
    assert networks.tasks == [["model.mn.train[split-0,network-0]"], ["model.mn.train[split-1,network-2]"]]
    assert train.after == ["train-mn-networks"] and train.corr == []  # afterok, never aftercorr


def _key(plan, split: int) -> str:
    """The resume key of split `split`'s training under `plan`."""
    p = next(p for p in plan.steps if p.step.id == f"model.mn.train[split-{split}]")
    return p.step.payload.resume_key(
        {d: next(q.fingerprint for q in plan.steps if q.step.id == d) or "" for d in p.step.deps}
    )


def test_plan_slurm_shows_the_network_array(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["plan", str(_spec(tmp_path)), "--slurm"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("  train-mn-networks: array of 6, after data") for line in out), out
    assert any(line.startswith("  train-mn: array of 2, after data, train-mn-networks") for line in out)
    assert "      4: model.mn.train[split-1,network-1]" in out
    assert main(["plan", str(_spec(tmp_path)), "--slurm", "--json"]) == 0
    jobs = {job["name"]: job for job in json.loads(capsys.readouterr().out)["jobs"]}
    assert jobs["train-mn"]["after"] == ["data", "train-mn-networks"]
    assert jobs["train-mn-networks"]["tasks"][0] == ["model.mn.train[split-0,network-0]"]


def test_a_network_target_submits_that_network_alone(tmp_path: Path) -> None:
    plan = make_plan(load_spec(_spec(tmp_path)))
    jobs = make_jobs(plan, ["model.mn.train[split-1,network-*]"])
    assert [(job.name, job.tasks) for job in jobs[1:]] == [
        ("train-mn", [[f"model.mn.train[split-1,network-{k}]"] for k in range(NETWORKS)])
    ]  # the networks only: the split is published by a later apply of it


def test_a_network_task_still_running_gets_no_new_task_and_the_split_waits_for_it(tmp_path: Path) -> None:
    # a second `apply --slurm` while the ledger records network tasks queued or running by their targets
    plan = make_plan(load_spec(_spec(tmp_path)))
    queued = {f"model.mn.train[split-0,network-{k}]": f"70_{k}" for k in range(NETWORKS)}
    queued["model.mn.train[split-1,network-1]"] = "71_4"
    jobs = [job for job in make_jobs(plan, queued=queued) if job.kind == "train"]
    (networks,) = [job for job in jobs if job.name.endswith("-networks")]
    trains = [job for job in jobs if job is not networks]
    assert networks.tasks == [["model.mn.train[split-1,network-0]"], ["model.mn.train[split-1,network-2]"]]
    assert networks.after_ids == []  # the new networks need no other network
    waits = {task[0]: job.after_ids for job in trains for task in job.tasks}
    assert waits == {
        "model.mn.train[split-0]": ["70_0", "70_1", "70_2"],
        "model.mn.train[split-1]": ["71_4"],
    }


def test_status_shows_each_network_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the ledger records network tasks by their own targets: one finished, one running, one failed
    spec = _spec(tmp_path)
    run = ["dataset.*", "model.mn.split"]
    assert main(["apply", str(spec), "--quiet", *(a for t in run for a in ("--target", t))]) == 0
    plan = make_plan(load_spec(spec))
    p = next(p for p in plan.steps if p.step.id == "model.mn.train[split-0]")
    upstream = {d: next(q.fingerprint for q in plan.steps if q.step.id == d) or "" for d in p.step.deps}
    mark_network_done(MapsLayout(tmp_path / "maps/mn"), 0, 0, p.step.payload.resume_key(upstream), {})
    tasks = [[f"model.mn.train[split-0,network-{k}]"] for k in range(NETWORKS)]
    log = str(tmp_path / "logs/%A_%a.log")
    ledger = Ledger(
        jobs_file(spec), [JobRecord("70", "train-mn-networks", "train", tasks, [], "s", log, "t")]
    )
    ledger.save()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/70_2.log").write_text("RuntimeError: out of memory\n")
    monkeypatch.setattr(slurm, "queued", lambda: {"70_1": ("RUNNING", "None")})
    monkeypatch.setattr(slurm, "ended", lambda ids: {"70_2": ("FAILED", "1")})
    rows = {s.step: s for s in status(spec).steps}
    assert [(rows[t[0]].word, rows[t[0]].job) for t in tasks] == [
        ("done", "70_0"),
        ("running", "70_1"),
        ("failed", "70_2"),
    ]
    assert rows[tasks[2][0]].log == tmp_path / "logs/70_2.log"
    assert rows[tasks[2][0]].last_line == "RuntimeError: out of memory"
    assert "model.mn.train[split-1,network-0]" not in rows  # never submitted: the split's row says it
    text = render(status(spec))
    assert f"  failed        {tasks[2][0]}" in text and "log: " + str(tmp_path / "logs/70_2.log") in text

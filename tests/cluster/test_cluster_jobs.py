"""The jobs `apply --slurm` makes from a plan, their resources, and the `[cluster]` table kept out of the
fingerprints (no SLURM needed: these read the plan only)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.cluster import ledger, slurm, status
from neuroexec.cluster.jobs import make_jobs
from neuroexec.cluster.resources import parse_options, resources_for
from neuroexec.cluster.script import script_text
from neuroexec.errors import InputError
from neuroexec.plan.graph import build_steps, make_plan
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
workers = 1
[datasets.demo]
caps = "data/demo"
generate = { subjects = 12, resolution_mm = 8, seed = 1 }
[datasets.demo-test]
caps = "data/demo-test"
generate = { subjects = 4, resolution_mm = 8, seed = 2, subject_offset = 1000 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2 }
[groups.test]
dataset = "demo-test"
models = ["cnn"]
selection_metrics = ["loss"]
interpret = [{ name = "grad", method = "gradients", target = "AD" }]
"""
CLUSTER = """
[cluster]
time = "02:00:00"
account = "lab"
[cluster.train]
gpus = 1
options = ["--qos=long"]
"""


def _spec(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC + extra)
    return path


def test_shared_steps_once_trainings_as_an_array_evaluations_after_them(tmp_path: Path) -> None:
    data, train, evaluate = make_jobs(make_plan(load_spec(_spec(tmp_path))))
    assert (data.name, data.array, data.after) == ("data", False, [])
    assert data.tasks == [[
        "dataset.demo.generate", "dataset.demo-test.generate", "dataset.demo.extract[image]",
        "dataset.demo-test.extract[image]", "model.cnn.split", "group.test.define[cnn]",
    ]]  # fmt: skip
    assert (train.name, train.after) == ("train-cnn", ["data"])
    assert train.tasks == [["model.cnn.train[split-0]"], ["model.cnn.train[split-1]"]]
    assert (evaluate.name, evaluate.after) == ("evaluate", ["data", "train-cnn"])
    assert evaluate.tasks == [
        [f"group.test.{what}[cnn/split-{i}/best-loss]" for what in ("predict", "interpret.grad")]
        for i in (0, 1)
    ]
    assert train.resources.cpus == 2  # one DataLoader worker plus one
    assert (train.corr, evaluate.corr) == ([], ["train-cnn"])  # split i's evaluation after split i only
    script = script_text(evaluate, tmp_path / "spec.toml", tmp_path / "e.log", ["40", "41"], "python")
    assert "#SBATCH --dependency=afterok:40,aftercorr:41" in script.splitlines()


def test_evaluations_not_one_per_training_wait_for_the_whole_array(tmp_path: Path) -> None:
    """Both trainings but split 1's predictions only: the evaluation array's task 0 is not training task
    0's, so it waits for the whole training array (afterok)."""
    plan = make_plan(load_spec(_spec(tmp_path)))
    jobs = make_jobs(plan, ["model.cnn.train[split-0]", "group.test.predict[cnn/split-1/best-loss]"])
    train, evaluate = jobs[1:]
    assert (len(train.tasks), evaluate.tasks) == (2, [["group.test.predict[cnn/split-1/best-loss]"]])
    assert (evaluate.after, evaluate.corr) == (["data", "train-cnn"], [])
    script = script_text(evaluate, tmp_path / "spec.toml", tmp_path / "e.log", ["40", "41"], "python")
    assert "#SBATCH --dependency=afterok:40:41" in script.splitlines()


def test_steps_of_a_queued_job_are_not_submitted_again(tmp_path: Path) -> None:
    """A training still queued (job 77) is left to it; its evaluations run after job 77, the other
    split's after the new training array."""
    plan = make_plan(load_spec(_spec(tmp_path)))
    jobs = make_jobs(plan, queued={"model.cnn.train[split-0]": "77"})
    by_name = {job.name: job for job in jobs}
    assert by_name["train-cnn"].tasks == [["model.cnn.train[split-1]"]]
    first, second = by_name["evaluate"], by_name["evaluate-2"]
    assert (first.after_ids, first.tasks[0][0]) == (["77"], "group.test.predict[cnn/split-0/best-loss]")
    assert (second.after, second.tasks[0][0]) == (
        ["data", "train-cnn"],
        "group.test.predict[cnn/split-1/best-loss]",
    )


def test_target_selects_the_jobs(tmp_path: Path) -> None:
    plan = make_plan(load_spec(_spec(tmp_path)))
    jobs = make_jobs(plan, ["model.cnn.train[split-1]"])
    assert [(job.name, job.tasks) for job in jobs] == [
        ("data", [["dataset.demo.generate", "dataset.demo.extract[image]", "model.cnn.split"]]),
        ("train-cnn", [["model.cnn.train[split-1]"]]),
    ]


def test_cluster_table_then_flags_set_the_resources(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, CLUSTER))
    flags = parse_options(["train.time=04:00:00", "mem=8G"])
    train = resources_for("train", spec.cluster, flags, {"cpus": 3})
    assert train.sbatch_lines() == [
        "--cpus-per-task=3", "--gpus=1", "--time=04:00:00", "--mem=8G", "--account=lab", "--qos=long",
    ]  # fmt: skip
    data = resources_for("data", spec.cluster, flags)
    assert data.sbatch_lines() == ["--cpus-per-task=1", "--time=02:00:00", "--mem=8G", "--account=lab"]


def test_cluster_table_is_in_no_fingerprint(tmp_path: Path) -> None:
    """Editing [cluster] changes no step's config, so it re-runs nothing."""
    plain = build_steps(load_spec(_spec(tmp_path)))
    with_table = build_steps(load_spec(_spec(tmp_path, CLUSTER)))
    assert [(s.id, s.config, s.deps) for s in plain] == [(s.id, s.config, s.deps) for s in with_table]


@pytest.mark.parametrize("bad", ["train.gpu=1", "gpus", "test.gpus=1", "train.cpus=many"])
def test_a_wrong_slurm_opt_is_one_sentence(bad: str) -> None:
    with pytest.raises(InputError, match="--slurm-opt|whole number"):
        resources_for("train", {}, parse_options([bad]))


@pytest.mark.parametrize(
    ("table", "flag", "named"),
    [
        ('[cluster]\ntime = "forever"\n', [], "cluster.time = 'forever'"),
        ('[cluster.evaluate]\nmem = "lots"\n', [], "cluster.evaluate.mem = 'lots'"),
        ("", ["train.time=abc"], "--slurm-opt train.time=abc"),
        ("", ["mem=16 G"], "--slurm-opt mem=16 G"),
    ],
)
def test_a_bad_time_or_mem_is_refused_at_plan_time(
    tmp_path: Path, capsys: pytest.CaptureFixture, table: str, flag: list[str], named: str
) -> None:
    spec = _spec(tmp_path, table)
    opts = [a for f in flag for a in ("--slurm-opt", f)]
    assert main(["plan", str(spec), "--slurm", *opts]) == 2
    err = capsys.readouterr().err
    assert named in err and "expected a SLURM" in err and "Traceback" not in err, err
    assert (str(spec) in err) == bool(table)


@pytest.mark.parametrize("value", ["90", "10:00", "20:00:00", "2-12", "2-12:30", "2-12:30:00", "UNLIMITED"])
def test_slurm_time_forms_are_accepted(value: str) -> None:
    assert resources_for("train", {"time": value, "mem": "16G"}, {}).sbatch_lines()[1:] == [
        f"--time={value}",
        "--mem=16G",
    ]


def test_plan_slurm_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    assert main(["plan", str(_spec(tmp_path, CLUSTER)), "--slurm", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format_version"] == "1.0" and data["queued"] == {} and data["note"] == ""
    data_job, train, evaluate = data["jobs"]
    assert (data_job["name"], data_job["array"], train["after"]) == ("data", False, ["data"])
    assert train["tasks"] == [["model.cnn.train[split-0]"], ["model.cnn.train[split-1]"]]
    assert "--gpus=1" in train["sbatch"]
    assert (evaluate["after"], evaluate["after_task_by_task"]) == (["data", "train-cnn"], ["train-cnn"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_paths_in_the_script_are_quoted(tmp_path: Path) -> None:
    """A spec folder with a space (and a `#`, a comment for sbatch): the #SBATCH lines are double-quoted,
    the shell lines quoted."""
    folder = tmp_path / "my study #2"
    folder.mkdir()
    spec = _spec(folder)
    train = make_jobs(make_plan(load_spec(spec)))[1]
    text = script_text(train, spec, folder / "logs/train-%A_%a.log", ["5"], "/my venv/python")
    lines = text.splitlines()
    assert f'#SBATCH --output="{folder}/logs/train-%A_%a.log"'.replace("#2", "\\#2") in lines, lines
    assert f"cd '{folder}'" in lines
    assert lines[-1] == f"exec '/my venv/python' -m neuroexec apply '{spec}' --quiet " + '"$@"'


def test_plan_slurm_shows_the_jobs_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = _spec(tmp_path, CLUSTER)
    assert main(["plan", str(spec), "--slurm", "--slurm-opt", "evaluate.cpus=4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "  train-cnn: array of 2, after data, --cpus-per-task=2 --gpus=1 --time=02:00:00 --account=lab --qos=long"
        in out
    )
    assert any(
        line.startswith("  evaluate: array of 2, after data, train-cnn (task by task), --cpus-per-task=4")
        for line in out
    )
    assert out[-1] == "Jobs: 3 to submit (12 steps), 0 still queued."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_a_training_on_several_gpus_runs_under_srun_torchrun(tmp_path: Path) -> None:
    plan = make_plan(load_spec(_spec(tmp_path)))
    flags = parse_options(["train.gpus=2"])
    train = next(job for job in make_jobs(plan, settings=({}, flags)) if job.kind == "train")
    text = script_text(train, tmp_path / "spec.toml", tmp_path / "train.log", ["5"], sys.executable)
    last = text.splitlines()[-1]
    assert last.startswith("exec ") and " srun " in last and "torchrun --nnodes" in last
    assert "--nproc-per-node=2" in last and last.endswith(
        "-m neuroexec apply " + f'{tmp_path / "spec.toml"} --quiet "$@"'
    )
    assert "#SBATCH --gpus=2" in text.splitlines()


def test_status_of_a_job_slurm_forgot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without accounting storage SLURM forgets a finished job: a step of it not done is failed, with
    the job id, its log and the log's last line."""
    spec = _spec(tmp_path)
    log = tmp_path / "train-cnn-12_%a.log"
    (tmp_path / "train-cnn-12_1.log").write_text("Plan ...\nerror: training diverged at epoch 3\n\n")
    tasks = [["model.cnn.train[split-0]"], ["model.cnn.train[split-1]"]]
    book = ledger.Ledger(
        ledger.jobs_file(spec), [ledger.JobRecord("12", "train-cnn", "train", tasks, [], "s", str(log), "t")]
    )
    book.save()
    monkeypatch.setattr(status.shutil, "which", lambda name: f"/usr/bin/{name}")  # with or without SLURM here
    monkeypatch.setattr(slurm, "queued", lambda: {"12_0": ("RUNNING", "None")})
    monkeypatch.setattr(slurm, "ended", lambda ids: {})
    report = status.status(spec)
    by_step = {s.step: s for s in report.steps}
    assert (by_step["model.cnn.train[split-0]"].word, by_step["model.cnn.train[split-0]"].job) == (
        "running",
        "12_0",
    )
    failed = by_step["model.cnn.train[split-1]"]
    assert (failed.word, failed.job, failed.log) == ("failed", "12_1", tmp_path / "train-cnn-12_1.log")
    assert failed.last_line == "error: training diverged at epoch 3"
    assert by_step["model.cnn.split"].word == "not submitted"
    text = status.render(report)
    assert f"                log: {tmp_path / 'train-cnn-12_1.log'}" in text.splitlines()
    assert [s.step for s in report.failed()] == ["model.cnn.train[split-1]"]


def test_slurm_opt_without_slurm_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["apply", str(_spec(tmp_path)), "--slurm-opt", "time=01:00:00"]) == 2
    assert "--slurm-opt only goes with --slurm" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_status_of_a_spec_never_submitted_says_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", str(_spec(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "  to do         model.cnn.train[split-0]" in out.splitlines()
    assert "not submitted" not in out and out.splitlines()[-1].endswith(", 12 to do.")


def test_report_names_the_failed_slurm_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroexec.report import report

    spec = _spec(tmp_path)
    assert "SLURM" not in report(load_spec(spec))  # no job records: no line
    tasks = [["model.cnn.train[split-0]"], ["model.cnn.train[split-1]"]]
    log = tmp_path / "train-cnn-12_%a.log"
    record = ledger.JobRecord("12", "train-cnn", "train", tasks, [], "s", str(log), "t")
    ledger.Ledger(ledger.jobs_file(spec), [record]).save()
    monkeypatch.setattr(status.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm, "queued", lambda: {"12_0": ("RUNNING", "None")})
    monkeypatch.setattr(slurm, "ended", lambda ids: {"12_1": ("FAILED", "1:0")})
    lines = report(load_spec(spec)).splitlines()
    at = lines.index("  SLURM jobs failed: 1 (`neuroexec status` says more; `apply --slurm` resubmits)")
    assert lines[at + 1 :] == [
        f"    job 12_1 FAILED (exit 1:0): model.cnn.train[split-1]; log {tmp_path / 'train-cnn-12_1.log'}"
    ]

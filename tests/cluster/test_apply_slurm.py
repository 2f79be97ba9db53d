"""`neuroexec apply SPEC --slurm` against the real one-node SLURM (tests/cluster/slurm.py), on a tiny variant
of the quickstart (two splits, TinyCNN, 5 epochs, a synthetic CAPS at 8 mm, predictions on another
cohort). One scenario, run once for the module, as a user would:

1. `apply --slurm`: a data job, a training array (one split per task, both running at once on one MAPS)
   and an evaluation array, after the data job (`afterok`) and task by task after the trainings
   (`aftercorr`);
2. split 0's task is frozen (SIGSTOP) once its first epoch checkpoint exists, then killed (SIGKILL, as
   by the OOM killer or a node failure): split 0's evaluation is cancelled (invalid dependency), split
   1's training and evaluation finish;
3. `neuroexec status` names the failed training with its job id and log;
4. `apply --slurm` again submits only what is not done (split 0's training, which resumes, and its
   predictions), not the data job nor split 1;
5. a plain `scancel` of that resumed training: cancelled, not requeued; `apply --slurm` once more
   submits it again with its predictions, and it resumes;
6. the models and predictions equal those of a local `neuroexec apply` of the same spec, bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.maps.checkpoints import load_model_state
from tests.cluster.slurm import Slurm

SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
seed = 0
deterministic = true
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
train = { epochs = 5 }
[groups.test]
dataset = "demo-test"
models = ["cnn"]
selection_metrics = ["loss"]
"""


def neuroexec(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroexec", *argv], capture_output=True, text=True, timeout=180, env=env
    )


def in_process(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`neuroexec ARGV` run by this process's `main` under `env` (the commands that only read, `plan` and
    `status`: no second torch import, ~10 s each on a loaded 2-core machine), its output captured."""
    out, err, saved = io.StringIO(), io.StringIO(), dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["neuroexec", *argv], code, out.getvalue(), err.getvalue())


def _jobs(spec: Path) -> list[dict]:
    return json.loads((spec.parent / ".neuroexec/slurm/spec/jobs.json").read_text())["jobs"]


def _pids(slurm: Slurm, task: str) -> list[int]:
    """The processes of a running job (its batch script, which is neuroexec: the script exec's it)."""
    listed = slurm.run("scontrol", "listpids", slurm.job(task)["JobId"], check=False).stdout.splitlines()
    return [int(line.split()[0]) for line in listed[1:] if line.split() and line.split()[0].isdigit()]


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _freeze_after_first_checkpoint(slurm: Slurm, task: str, checkpoint: Path) -> tuple[list[int], bool]:
    """SIGSTOP the task's processes as soon as its first epoch checkpoint exists (they are on this host);
    their pids, and whether the other task was running at the same time."""
    other = task[:-1] + "1"
    pids: list[int] = []
    both_running = False
    deadline = time.monotonic() + 180
    while not pids:
        assert slurm.state(task) in ("PENDING", "RUNNING"), slurm.logs()
        assert time.monotonic() < deadline, f"{task} did not start\n{slurm.logs()}"
        pids = _pids(slurm, task) if slurm.state(task) == "RUNNING" else []
        time.sleep(0.2)
    while not checkpoint.exists():
        assert time.monotonic() < deadline, f"no checkpoint after 180 s\n{slurm.logs()}"
        both_running = both_running or slurm.state(other) == "RUNNING"
        for _ in range(100):  # the checkpoint, often; SLURM's view of the other task, now and then
            if checkpoint.exists():
                break
            time.sleep(0.005)
    _signal(pids, signal.SIGSTOP)
    finished = checkpoint.parents[1] / "best-loss/model.pth.tar"
    assert not finished.exists(), "the training finished before it could be stopped: give it more epochs"
    return pids, both_running or slurm.state(other) == "RUNNING"


def _log(job: dict) -> Path:
    return Path(job["log"].replace("%A", job["id"]).replace("%a", "0"))


def _cancel_once_resumed(slurm: Slurm, jobs: list[dict]) -> tuple[str, str]:
    """A plain `scancel` of the resubmitted training once it has resumed; its final state, its log, and
    (after it) the evaluation that needed it ends too (cancelled: its dependency can never be met)."""
    train, evaluate = jobs
    deadline = time.monotonic() + 120
    while "resuming after epoch" not in slurm.log(_log(train)):
        assert time.monotonic() < deadline, f"the training did not resume\n{slurm.log(_log(train))}"
        time.sleep(0.1)
    slurm.run("scancel", f"{train['id']}_0")
    state = slurm.wait(train["id"], timeout=60)
    slurm.wait(evaluate["id"], timeout=60)
    return state, slurm.log(_log(train))


@pytest.fixture(scope="module")
def scenario(slurm: Slurm, tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = {**slurm.env, "OMP_NUM_THREADS": "1"}
    on_slurm, local = (
        tmp_path_factory.mktemp("on-slurm") / "spec.toml",
        tmp_path_factory.mktemp("local") / "spec.toml",
    )
    on_slurm.write_text(SPEC)
    local.write_text(SPEC)
    seen: dict = {"first": neuroexec("apply", str(on_slurm), "--slurm", env=env)}
    assert seen["first"].returncode == 0, seen["first"].stderr
    data, train, evaluate = (job["id"] for job in _jobs(on_slurm))
    seen["ids"] = (data, train, evaluate)
    seen["pending"] = {j: slurm.job(j) for j in (train, evaluate)}
    seen["plan_while_queued"] = in_process("plan", str(on_slurm), "--slurm", env=env)
    reference = subprocess.Popen([sys.executable, "-m", "neuroexec", "apply", str(local), "--quiet"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoint = on_slurm.parent / "maps/cnn/split-0/tmp/resume.pth.tar"  # written last, after the weights
    frozen, seen["both_running"] = _freeze_after_first_checkpoint(slurm, f"{train}_0", checkpoint)
    _signal(frozen, signal.SIGKILL)  # as the OOM killer or a node failure would: no SIGTERM, no requeue
    seen["killed"] = slurm.wait(f"{train}_0", timeout=120)
    seen["split_1"] = slurm.wait(f"{train}_1", timeout=240)
    seen["evaluate_1"] = slurm.wait(f"{evaluate}_1", timeout=120)
    seen["evaluate_0"] = slurm.state(f"{evaluate}_0")
    seen["status"] = in_process("status", str(on_slurm), env=env)
    seen["second"] = neuroexec("apply", str(on_slurm), "--slurm", env=env)
    assert seen["second"].returncode == 0, seen["second"].stderr
    seen["resubmitted"] = _jobs(on_slurm)[3:]
    seen["cancelled"] = _cancel_once_resumed(slurm, seen["resubmitted"])
    seen["third"] = neuroexec("apply", str(on_slurm), "--slurm", env=env)
    assert seen["third"].returncode == 0, seen["third"].stderr
    seen["after_cancel"] = _jobs(on_slurm)[5:]
    seen["final"] = {job["id"]: slurm.wait(job["id"], timeout=240) for job in seen["after_cancel"]}
    assert reference.wait(timeout=180) == 0, reference.stderr.read()
    seen["spec"], seen["local"] = on_slurm, local
    return seen


def test_jobs_and_their_dependencies(scenario: dict) -> None:
    data, train, evaluate = scenario["ids"]
    script = Path(_jobs(scenario["spec"])[1]["script"]).read_text()
    for line in ("#SBATCH --requeue", "#SBATCH --signal=B:TERM@120", f"#SBATCH --dependency=afterok:{data}",
                 "#SBATCH --array=0-1"):  # fmt: skip
        assert line in script.splitlines()
    assert any(line.startswith("export NEUROEXEC_SLURM_REQUEUE=1 ") for line in script.splitlines())
    assert "  1) set -- --target 'model.cnn.train[split-1]' ;;" in script
    assert script.splitlines()[-1].startswith(f"exec {sys.executable} -m neuroexec apply ")
    assert scenario["pending"][train]["Dependency"].startswith(f"afterok:{data}")
    assert f"aftercorr:{train}" in scenario["pending"][evaluate]["Dependency"]
    assert f"afterok:{train}" not in scenario["pending"][evaluate]["Dependency"]
    assert scenario["pending"][train]["JobState"] == "PENDING"


def test_steps_of_jobs_still_queued_are_not_submitted_again(scenario: dict) -> None:
    """`plan --slurm` right after `apply --slurm`: each step is done or in a job SLURM will still run."""
    out = scenario["plan_while_queued"]
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("Jobs: 0 to submit (0 steps), "), out.stdout
    assert "already queued or running (not submitted again):" in out.stdout


def test_status_names_the_failed_job_and_its_log(scenario: dict) -> None:
    _, train, evaluate = scenario["ids"]
    assert (scenario["killed"], scenario["split_1"], scenario["evaluate_1"]) == (
        "FAILED",
        "COMPLETED",
        "COMPLETED",
    )  # split 1's evaluation did not wait for split 0's training
    assert scenario["evaluate_0"] in ("CANCELLED", "PENDING")
    out = scenario["status"]
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if "model.cnn.train[split-0]" in line)
    assert lines[failed].split()[:2] == ["failed", "model.cnn.train[split-0]"]
    assert f"job {train}_0 FAILED" in lines[failed]
    assert lines[failed + 1].split() == [
        "log:",
        str(scenario["spec"].parent / f".neuroexec/slurm/spec/logs/train-cnn-{train}_0.log"),
    ]
    assert any(line.split()[:2] == ["done", "model.cnn.train[split-1]"] for line in lines)


def test_rerun_submits_only_what_is_not_done(scenario: dict) -> None:
    """Not the data job, not split 1's training nor its predictions (done): split 0's training (resumed
    from its checkpoint) and its predictions after it."""
    again = scenario["resubmitted"]
    assert [(job["name"], job["tasks"]) for job in again] == [
        ("train-cnn", [["model.cnn.train[split-0]"]]),
        ("evaluate", [["group.test.predict[cnn/split-0/best-loss]"]]),
    ]
    assert [job["after"] for job in again] == [[], [again[0]["id"]]]
    assert "resuming after epoch" in scenario["cancelled"][1], scenario["cancelled"][1][-2000:]


def test_a_training_cancelled_by_scancel_is_resumed_by_the_next_apply(scenario: dict) -> None:
    """A plain `scancel` of the resumed training: cancelled, not requeued; the next `apply --slurm`
    submits it again (and its predictions), it resumes, and the results equal a local apply's (below)."""
    state, log = scenario["cancelled"]
    assert state == "CANCELLED" and "requeue: scontrol" not in log, log[-2000:]
    again = scenario["after_cancel"]
    assert [(job["name"], job["tasks"]) for job in again] == [
        ("train-cnn", [["model.cnn.train[split-0]"]]),
        ("evaluate", [["group.test.predict[cnn/split-0/best-loss]"]]),
    ]
    assert set(scenario["final"].values()) == {"COMPLETED"}
    assert "resuming after epoch" in _log(again[0]).read_text(), _log(again[0]).read_text()[-2000:]


@pytest.mark.parametrize("split", [0, 1])
def test_results_equal_a_local_apply(scenario: dict, split: int) -> None:
    on_slurm, local = (scenario[k].parent / "maps/cnn" for k in ("spec", "local"))
    model = f"split-{split}/best-loss/model.pth.tar"
    got, want = load_model_state(on_slurm / model)[0], load_model_state(local / model)[0]
    assert got.keys() == want.keys()
    assert all(got[k].dtype == want[k].dtype and bool((got[k] == want[k]).all()) for k in want)
    tables = sorted(p.relative_to(local) for p in (local / f"split-{split}").rglob("*_prediction.tsv"))
    assert tables
    for table in tables:
        assert (on_slurm / table).read_bytes() == (local / table).read_bytes()


def test_array_tasks_ran_side_by_side_on_one_maps(scenario: dict) -> None:
    """Both trainings ran at once in the same MAPS (each under its split's lock), and the MAPS they left
    is whole: every step up to date."""
    assert scenario["both_running"]
    done = in_process("plan", str(scenario["spec"]), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert "Nothing to do" in done.stdout, done.stdout

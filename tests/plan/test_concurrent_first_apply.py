"""Applies started together on a new project, an interrupted generation, and a plan gone stale before
its locks (issue 14, rules 8 and 10): another apply's half-written CAPS is never judged foreign (exit 3,
naming the holder, never advice to delete it); a generation neuroexec started and did not finish is
removed (planned `-` lines) and generated again by the next apply; a plan whose steps another apply ran
after it was made runs nothing (exit 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import neuroexec.data.synthetic as synthetic
from neuroexec.context import RunContext
from neuroexec.errors import LockHeld, PlanRefused, PlanStale
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_text
from neuroexec.progress import Reporter
from neuroexec.records import RECORDS_DIR, generation_marker, records_dir
from neuroexec.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
GENERATE = "dataset.demo.generate"
SPEC = """
version = 1
[compute]
workers = 0
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 8, resolution_mm = 8, seed = {seed} }}
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = 2 }}
"""
# An apply whose generation stops after a few images and waits there, holding its locks, until the
# file argv[1] exists: the moment another apply would see a half-written CAPS, made certain.
PAUSED = """
import sys, time
from pathlib import Path
import neuroexec.data.synthetic as synthetic
from neuroexec.cli import main
go, after, count, save = Path(sys.argv[1]), int(sys.argv[2]), [0], synthetic.save_nifti
def paused(path, *args, **kwargs):
    save(path, *args, **kwargs)
    count[0] += 1
    if count[0] == after:
        print("paused", flush=True)
        while not go.exists():
            time.sleep(0.05)
synthetic.save_nifti = paused
sys.exit(main(sys.argv[3:]))
"""
APPLY = ["apply", "spec.toml", "--target", "dataset.*"]


def project(folder: Path, seed: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.toml").write_text(SPEC.format(seed=seed))
    return folder / "spec.toml"


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def start_paused(folder: Path, after: int = 3) -> subprocess.Popen:
    """An apply of the project in `folder`, stopped after `after` images with its CAPS half-written."""
    argv = [sys.executable, "-c", PAUSED, str(folder / "go"), str(after), *APPLY]
    proc = subprocess.Popen(argv, cwd=folder, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line == b"paused\n":
            return proc
    proc.wait()
    raise AssertionError(f"the paused apply ended first (exit {proc.returncode}): {proc.stderr.read()!r}")


def run_apply(spec: Path, target: str = "dataset.*") -> None:
    apply(make_plan(load_spec(spec)), RunContext(reporter=Reporter(quiet=True)), target=target)


def contents(caps: Path) -> dict[str, bytes]:
    """Every file of a CAPS but neuroexec's records (its own and the extraction's manifest, which holds
    the images' mtimes), by relative path."""
    records = {RECORDS_DIR, "tensor_extraction"}
    return {
        p.relative_to(caps).as_posix(): p.read_bytes()
        for p in sorted(caps.rglob("*"))
        if p.is_file() and not records & set(p.relative_to(caps).parts)
    }


def generate_step(spec: Path):
    plan = make_plan(load_spec(spec))
    return plan, next(p for p in plan.steps if p.step.id == GENERATE)


def test_applies_started_while_another_generates_exit_3_naming_it_never_a_refusal(tmp_path):
    project(tmp_path)
    first = start_paused(tmp_path)
    try:
        others = [
            subprocess.Popen(
                [sys.executable, "-m", "neuroexec", *APPLY],
                cwd=tmp_path,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for _ in range(2)
        ]
        ended = [(p.wait(timeout=300), p.communicate()) for p in others]
    finally:
        (tmp_path / "go").touch()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    for code, (out, err) in ended:
        assert code == 3, err.decode()
        assert "being written by another apply" in err.decode() and f"pid {first.pid}" in err.decode()
        assert b"did not generate there" not in out + err and b"delete" not in out + err
        assert f"another apply is generating here (pid {first.pid} on ".encode() in out
    again = subprocess.run([sys.executable, "-m", "neuroexec", *APPLY], cwd=tmp_path, env=_env(),
                           capture_output=True)  # fmt: skip
    assert again.returncode == 0 and b"Nothing to do" in again.stdout + again.stderr, again.stderr


def test_a_killed_generation_is_removed_as_planned_and_generated_again_to_the_same_bytes(tmp_path):
    reference = project(tmp_path / "reference")
    run_apply(reference)
    spec = project(tmp_path / "killed")
    caps = tmp_path / "killed" / "data" / "demo"
    proc = start_paused(tmp_path / "killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = sorted(caps.glob("subjects/*/*/t1_linear/*.nii.gz"))
    assert len(half) == 3 and generation_marker(caps).exists()

    plan, step = generate_step(spec)
    assert step.action == "+", step.reasons
    removed = {p for r in step.removals for p in r.paths}
    assert all(any(p == f or p in f.parents for p in removed) for f in half)
    assert sum(r.files() for r in step.removals) == 3
    text = render_text(plan)
    assert (
        "- the synthetic dataset demo generated before" in text
        and "a generation was interrupted here" in text
    )

    run_apply(spec)
    assert not generation_marker(caps).exists()
    assert contents(caps) == contents(tmp_path / "reference" / "data" / "demo")
    assert generate_step(spec)[1].action == "="


def test_an_interrupted_generation_keeps_a_users_file_and_continues(tmp_path, monkeypatch):
    spec = project(tmp_path)
    caps = tmp_path / "data" / "demo"
    save, count = synthetic.save_nifti, [0]

    def interrupted(path, *args, **kwargs):
        count[0] += 1
        if count[0] == 4:
            raise KeyboardInterrupt  # Ctrl-C, or SLURM's SIGTERM as the CLI turns it
        save(path, *args, **kwargs)

    monkeypatch.setattr(synthetic, "save_nifti", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_apply(spec)
    monkeypatch.setattr(synthetic, "save_nifti", save)
    mine = next(caps.glob("subjects/*/*")) / "mine.txt"
    mine.write_text("precious")
    _, step = generate_step(spec)
    assert step.action == "+" and mine not in {p for r in step.removals for p in r.paths}
    run_apply(spec)
    assert mine.read_text() == "precious"
    reference = project(tmp_path / "reference")
    run_apply(reference)
    mine.unlink()
    assert contents(caps) == contents(tmp_path / "reference" / "data" / "demo")


def test_a_folder_without_the_marker_stays_refused(tmp_path, monkeypatch):
    spec = project(tmp_path)
    caps = tmp_path / "data" / "demo"
    (caps / "subjects" / "sub-0000").mkdir(parents=True)
    (caps / "subjects" / "sub-0000" / "notes.txt").write_text("mine")
    records_dir(caps).mkdir()
    (records_dir(caps) / "lock").touch()
    _, step = generate_step(spec)
    assert step.action == "!" and "did not generate there (subjects/)" in step.reasons[0]
    with pytest.raises(PlanRefused, match="did not generate there"):
        run_apply(spec)
    assert (caps / "subjects" / "sub-0000" / "notes.txt").read_text() == "mine"


HOLDER = """
import sys
from pathlib import Path
from neuroexec.lock import acquire
acquire(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def test_a_refused_folder_that_another_apply_holds_is_lock_held_not_refused(tmp_path):
    spec = project(tmp_path)
    caps = tmp_path / "data" / "demo"
    (caps / "participants.tsv").parent.mkdir(parents=True)
    (caps / "participants.tsv").write_text("participant_id\tsession_id\n")  # what an older apply writes
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(caps)], env=_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        assert generate_step(spec)[1].action == "!"
        with pytest.raises(LockHeld, match=f"being written by another apply .*pid {holder.pid}") as raised:
            run_apply(spec)
        assert raised.value.exit_code == 3
    finally:
        holder.kill()
        holder.wait()


def test_a_plan_whose_step_another_apply_ran_since_runs_nothing(tmp_path):
    spec = project(tmp_path)
    run_apply(spec)
    spec.write_text(SPEC.format(seed=2))
    old, step = generate_step(spec)
    assert step.action == "~" and step.removals
    run_apply(spec)  # another apply, in between
    caps = tmp_path / "data" / "demo"
    files = identities(caps)
    with pytest.raises(PlanStale, match=f"another apply ran {GENERATE} since this plan was made") as raised:
        apply(old, RunContext(reporter=Reporter(quiet=True)), target="dataset.*")
    assert raised.value.exit_code == 3
    assert identities(caps) == files


def identities(caps: Path) -> dict[Path, tuple[int, int]]:
    """(inode, mtime) of every data file: a file removed and written again has others."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in caps.rglob("*")
        if p.is_file() and RECORDS_DIR not in p.parts
    }


def test_a_refusal_that_no_longer_holds_under_the_lock_is_a_stale_plan(tmp_path):
    spec = project(tmp_path)
    caps = tmp_path / "data" / "demo"
    records_dir(caps).mkdir(parents=True)
    (records_dir(caps) / "lock").touch()
    (caps / "participants.tsv").write_text("participant_id\tsession_id\n")
    old, step = generate_step(spec)
    assert step.action == "!"
    (caps / "participants.tsv").unlink()  # what the plan judged is gone before apply holds the lock
    with pytest.raises(PlanStale, match=f"{GENERATE} is no longer refused; run apply again") as raised:
        apply(old, RunContext(reporter=Reporter(quiet=True)), target="dataset.*")
    assert raised.value.exit_code == 3 and not (caps / "subjects").exists()

"""apply tells what it does through a view: the human view prints the lines people have always read, and
`neuroexec apply --json` streams the same events as JSON lines on stdout (progress stays on stderr)."""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import neuroexec.executor
from neuroexec import progress
from neuroexec.cli import main
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.registry import kind
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.views import JsonView, StepFinished
from tests.cli.test_pipes_and_targets import CLEAN, run_with_closed_stdout
from tests.plan.test_plan_apply import DATA_STEPS, write

TARGETS = [DATA_STEPS, "dataset.demo.extract*"]  # generate x2, extract, split, group define: no training
STEPS = [
    "dataset.demo.generate",
    "dataset.other.generate",
    "dataset.demo.extract[image]",
    "model.cnn.split",
    DATA_STEPS,
]
# A temporary file of an atomic write whose writer (on another host) is gone: the next apply sweeps it.
LEFT_OVER = ".x.4242-4026531836@node1.1f2e3d4c.tmp"


def _apply(path: Path, messages: list[str]) -> None:
    reporter = Reporter(quiet=True)
    reporter.info = messages.append  # what apply tells the user
    apply(make_plan(load_spec(path)), RunContext(reporter=reporter), target=TARGETS)


def _events(out: str) -> list[dict]:
    """Every line of `out` is one strict JSON object (NaN is not JSON)."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return [json.loads(line, parse_constant=refuse) for line in out.splitlines()]


def test_the_human_view_prints_the_lines_apply_always_printed(tmp_path):
    path = write(tmp_path)
    messages: list[str] = []
    _apply(path, messages)
    _apply(path, messages)
    left = tmp_path / "maps/cnn" / LEFT_OVER
    left.write_text("x")
    os.utime(left, (0, 0))
    path = write(tmp_path, seed=2)  # the demo dataset is generated again: its old files are removed
    (generate,) = [p for p in make_plan(load_spec(path)).steps if p.step.id == STEPS[0]]
    (removal,) = generate.removals
    _apply(path, messages)
    done = "      done in 0.0s"
    expected = [
        "Applying 5 of 5 steps (0 up to date).",
        *[line for i, step in enumerate(STEPS, 1) for line in (f"[{i}/5] + {step} (new)", done)],
        "Applied 5 steps.",
        "Nothing to do: all 5 steps are up to date.",
        "Applying 4 of 5 steps (1 up to date).",
        f"Removed 1 temporary file(s) an interrupted run left in {tmp_path / 'maps/cnn'}.",
        "[1/4] ~ dataset.demo.generate",
        f"      - removing the synthetic dataset demo generated before: {removal.files()} files",
        done,
        *[line for i, step in enumerate(STEPS[2:], 2) for line in (f"[{i}/4] ~ {step}", done)],
        "Applied 4 steps.",
    ]
    assert [re.sub(r"done in \d+\.\ds$", "done in 0.0s", m) for m in messages] == expected


def test_apply_json_streams_the_plan_and_each_step_as_json_lines_on_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_FINAL_AFTER_S", -1.0)  # every loop's progress line is written
    path = write(tmp_path)
    targets = [a for t in TARGETS for a in ("--target", t)]
    assert main(["plan", str(path), "--json", *targets]) == 0
    planned = json.loads(capsys.readouterr().out)  # the plan event is what `plan --json --target` shows
    planned.pop("notes")
    assert main(["apply", str(path), "--json", *targets]) == 0
    captured = capsys.readouterr()
    events = _events(captured.out)
    types = [e["type"] for e in events]
    assert types == [
        "plan",
        "apply_started",
        *["step_started", "step_finished"] * len(STEPS),
        "apply_finished",
    ]
    assert {k: v for k, v in events[0].items() if k not in ("type", "time")} == planned
    assert events[1] | {"time": None} == {
        "type": "apply_started",
        "time": None,
        "steps": 5,
        "selected": 5,
        "up_to_date": 0,
    }
    finished = [e for e in events if e["type"] == "step_finished"]
    assert [e["step"] for e in finished] == STEPS and [e["index"] for e in finished] == [1, 2, 3, 4, 5]
    assert finished[0]["outputs"]["subjects"] == 8 and all(e["duration_s"] >= 0 for e in finished)
    assert events[-1]["ran"] == 5 and events[-1]["up_to_date"] == 0
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert "synthetic images 8/8" in captured.err  # progress goes to stderr, beside the JSON lines
    assert main(["apply", str(path), "--json", *targets]) == 0  # everything is up to date now
    assert [e["type"] for e in _events(capsys.readouterr().out)] == ["plan", "nothing_to_do"]


def test_a_failing_step_is_a_step_failed_event_and_exit_1(tmp_path, capsys):
    path = write(tmp_path, group_dataset="demo")  # the test group is the training data: leakage
    assert main(["apply", str(path), "--json", "--target", DATA_STEPS]) == 1
    captured = capsys.readouterr()
    events = _events(captured.out)
    assert [e["type"] for e in events[-3:]] == ["step_finished", "step_started", "step_failed"]
    failed = events[-1]
    assert (
        failed["step"] == DATA_STEPS and failed["exit_code"] == 1 and failed["index"] == failed["total"] == 3
    )
    assert "data leakage: 8 participant" in failed["error"]
    assert captured.err.startswith(f"error: step {DATA_STEPS} failed: ") and "data leakage" in captured.err


def test_an_interrupted_step_is_its_last_event(tmp_path, monkeypatch):
    def stopped(step, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(neuroexec.executor, "kind", lambda name: replace(kind(name), run=stopped))
    out = io.StringIO()
    path = write(tmp_path)
    ctx = RunContext(reporter=Reporter(quiet=True), view=JsonView(out))
    with pytest.raises(KeyboardInterrupt):
        apply(make_plan(load_spec(path)), ctx, target="dataset.demo.generate")
    events = _events(out.getvalue())
    assert [(e["type"], e.get("step")) for e in events] == [
        ("apply_started", None),
        ("step_started", "dataset.demo.generate"),
        ("step_interrupted", "dataset.demo.generate"),
    ]


def test_only_rank_0_tells(tmp_path):
    """Under torchrun every rank runs apply; the others would repeat each line (or mix JSON lines)."""
    path = write(tmp_path)
    told: list[str] = []
    for rank in (1, 0):
        reporter = Reporter(quiet=True)
        reporter.info = told.append
        ctx = RunContext(reporter=reporter, rank=rank, world_size=2)
        apply(make_plan(load_spec(path)), ctx, target="dataset.demo.generate")
        assert bool(told) == (rank == 0)


def test_json_lines_stop_quietly_when_the_reader_is_gone():
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    view = JsonView(Closed())
    event = StepFinished(step="s", index=1, total=1, duration_s=0.1, outputs={"loss": float("nan")})
    view.emit(event)  # no exception: `apply --json | head -1` goes on applying
    assert view.closed
    view.emit(event)


def test_non_finite_numbers_are_null_in_the_json_lines():
    out = io.StringIO()
    JsonView(out).emit(
        StepFinished(step="s", index=1, total=1, duration_s=0.1, outputs={"loss": float("inf")})
    )
    assert _events(out.getvalue())[0]["outputs"] == {"loss": None}


def test_apply_json_into_a_closed_pipe_still_applies(tmp_path):
    path = write(tmp_path)
    done = run_with_closed_stdout(
        "apply", str(path), "--json", "--target", "dataset.demo.generate", "--quiet"
    )
    assert done.returncode == 0 and not any(word in done.stderr for word in CLEAN), done.stderr
    assert (tmp_path / "data/demo/participants.tsv").is_file()

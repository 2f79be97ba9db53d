"""What apply tells: the executor emits events (the engine's hooks); a view shows them (Terraform's split
between `internal/terraform` hooks and `internal/command/views`).

`HumanView` prints the lines people read: the plan on stdout, apply's lines through the reporter (stderr,
with the progress bars). `JsonView` writes the same events as JSON lines, one object per line with its
`type` and `time`, for tools and logs (`neuroexec apply --json`). Progress of long loops stays with the
reporter, on stderr, so it never mixes with the JSON lines.

>>> import io
>>> out = io.StringIO()
>>> JsonView(out, clock=lambda: 0.0).emit(StepStarted(step="model.cnn.split", index=1, total=2, kind="split", action="+"))
>>> json.loads(out.getvalue())["type"], json.loads(out.getvalue())["step"]
('step_started', 'model.cnn.split')
>>> human_line(StepFinished(step="model.cnn.split", index=1, total=2, duration_s=0.25, outputs={}))
'      done in 0.2s'
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, TextIO

from neuroexec.progress import Reporter, counted


@dataclass(frozen=True)
class Event:
    """Something apply did or is about to do; `type` names it in the JSON lines."""

    type: ClassVar[str]

    def data(self) -> dict[str, Any]:
        """The event's fields, as its JSON line carries them (besides `type` and `time`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class PlanShown(Event):
    """The plan apply starts from: `text` as `neuroexec plan` prints it, `plan` as `plan --json` gives it
    (its JSON line carries `plan`'s keys: spec, steps, summary)."""

    type: ClassVar[str] = "plan"
    text: str
    plan: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return self.plan


@dataclass(frozen=True)
class NothingToDo(Event):
    """Every selected step is up to date: apply runs nothing (the last event)."""

    type: ClassVar[str] = "nothing_to_do"
    selected: int


@dataclass(frozen=True)
class ApplyStarted(Event):
    type: ClassVar[str] = "apply_started"
    steps: int  # to run
    selected: int
    up_to_date: int


@dataclass(frozen=True)
class TemporariesSwept(Event):
    """Temporary files of interrupted atomic writes (their writer is gone) removed from `folder`."""

    type: ClassVar[str] = "temporaries_swept"
    folder: Path
    files: int


@dataclass(frozen=True)
class StepStarted(Event):
    type: ClassVar[str] = "step_started"
    step: str
    index: int  # 1-based, of `total` steps to run
    total: int
    kind: str
    action: str  # the plan's symbol: + new, ~ changed


@dataclass(frozen=True)
class Removing(Event):
    """One of the step's planned removals (a `-` line of the plan), emitted just before its deletion."""

    type: ClassVar[str] = "removing"
    step: str
    what: str
    files: int


@dataclass(frozen=True)
class StepFinished(Event):
    type: ClassVar[str] = "step_finished"
    step: str
    index: int
    total: int
    duration_s: float
    outputs: dict[str, Any]  # the step's summary, as recorded in state.json


@dataclass(frozen=True)
class StepFailed(Event):
    """The step raised: apply stops; `exit_code` is the command's (1, or 3 for a lock)."""

    type: ClassVar[str] = "step_failed"
    step: str
    index: int
    total: int
    duration_s: float
    error: str
    exit_code: int


@dataclass(frozen=True)
class StepInterrupted(Event):
    """Ctrl-C or SIGTERM during the step: apply stops, finished steps are kept (exit 130)."""

    type: ClassVar[str] = "step_interrupted"
    step: str
    index: int
    total: int
    duration_s: float


@dataclass(frozen=True)
class ApplyFinished(Event):
    type: ClassVar[str] = "apply_finished"
    ran: int
    up_to_date: int
    duration_s: float


class View(Protocol):
    def emit(self, event: Event) -> None: ...


class Silent:
    """The view of torchrun's ranks other than 0: rank 0 speaks for all."""

    def emit(self, event: Event) -> None:
        pass


def human_line(event: Event) -> str | None:
    """The line people read for `event`; None for a failure or an interruption, which the command
    line says once, as an error (neuroexec/cli/__init__.py)."""
    match event:
        case NothingToDo():
            one = event.selected == 1
            return f"Nothing to do: {'the' if one else 'all'} {counted(event.selected, 'step')} {'is' if one else 'are'} up to date."
        case ApplyStarted():
            return f"Applying {event.steps} of {counted(event.selected, 'step')} ({event.up_to_date} up to date)."
        case TemporariesSwept():
            return f"Removed {event.files} temporary file(s) an interrupted run left in {event.folder}."
        case StepStarted():
            new = " (new)" if event.action == "+" else ""
            return f"[{event.index}/{event.total}] {event.action} {event.step}{new}"
        case Removing():
            return f"      - removing {event.what}: {event.files} files"
        case StepFinished():
            return f"      done in {event.duration_s:.1f}s"
        case ApplyFinished():
            return f"Applied {counted(event.ran, 'step')}."
    return None


class HumanView:
    """The plan on `out` (stdout), every other line through `reporter` (stderr, beside the progress)."""

    def __init__(self, reporter: Reporter, out: TextIO | None = None):
        self.reporter = reporter
        self.out = out
        self.reasons: dict[str, list[str]] = {}  # each step's, from the plan: -v repeats them as it starts

    def emit(self, event: Event) -> None:
        if isinstance(event, PlanShown):
            self.reasons = {s["id"]: s.get("reasons", []) for s in event.plan.get("steps", [])}
            _write(self.out or sys.stdout, event.text + "\n")  # with -q, its summary line alone
        elif (line := human_line(event)) is not None:
            final = isinstance(event, ApplyFinished | NothingToDo)
            (self.reporter.summary if final else self.reporter.info)(line)  # -q keeps the final line
            if isinstance(event, StepStarted):
                for reason in self.reasons.get(event.step, []):
                    self.reporter.detail(f"      because {reason}")


class JsonView:
    """One JSON object per line on `out` (stdout): `type`, `time` (ISO 8601, local time with its offset)
    and the event's fields. A reader that goes away (`| head -1`) does not stop the apply."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.time):
        self.out = out
        self.clock = clock
        self.closed = False

    def emit(self, event: Event) -> None:
        if self.closed:
            return
        when = datetime.fromtimestamp(self.clock()).astimezone().isoformat(timespec="milliseconds")
        line = json.dumps({"type": event.type, "time": when, **_plain(event.data())}, default=str)
        self.closed = not _write(self.out or sys.stdout, line + "\n")


def _plain(value: Any) -> Any:
    """`value` as strict JSON takes it: paths as strings, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write(stream: TextIO, text: str) -> bool:
    """Write and flush; False when the reader is gone, whose later writes (Python's flush at exit
    included) then go to /dev/null instead of raising again."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return False

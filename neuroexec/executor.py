"""apply: run the steps of a plan that are not up to date, in dependency order, under the locks of the
folders they write, recording each finished step so a re-run continues where it stopped."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NoReturn

from neuroexec import distributed, views
from neuroexec.atomic import NO_ROOM, sweep_temporaries
from neuroexec.context import RunContext, cpu_threads
from neuroexec.errors import DiskFull, PlanRefused, PlanStale, StepFailed
from neuroexec.lock import locked
from neuroexec.plan.graph import REFUSED, UP_TO_DATE, Plan, PlannedStep, record_stamp, step_fingerprint
from neuroexec.plan.registry import kind
from neuroexec.plan.state import read_state
from neuroexec.records import lock_file, state_file
from neuroexec.spec.training_checks import refuse_absent_gpu


@dataclass
class ApplyResult:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def apply(
    plan: Plan, ctx: RunContext, target: str | None = None, *, selected: list[PlannedStep] | None = None
) -> ApplyResult:
    """Run the steps of `plan` that `target` selects (all when None) and are not up to date.
    `selected`: those steps as `plan.select(target)` already gave them, when the caller showed them
    first (run_spec), so that apply runs the very steps the plan showed."""
    selected = plan.select(target) if selected is None else selected
    refused = [p for p in selected if p.action == REFUSED]
    if refused:
        _refuse(plan, refused, ctx)
    todo = [p for p in selected if p.action != UP_TO_DATE]
    # before any lock or step
    refuse_absent_gpu(plan.spec, [(p.step.id, p.step.compute, p.step.kind) for p in todo])
    result = ApplyResult(skipped=[p.step.id for p in selected if p.action == UP_TO_DATE])
    view = _view(ctx)
    if not todo:
        view.emit(views.NothingToDo(selected=len(selected)))
        return result
    view.emit(views.ApplyStarted(steps=len(todo), selected=len(selected), up_to_date=len(result.skipped)))
    start = time.monotonic()
    scopes = [(p.step.home, p.step.lock_scope) for p in todo] if ctx.is_main else []
    fingerprints = {p.step.id: p.fingerprint for p in plan.steps if p.action == UP_TO_DATE}
    with locked(scopes):
        if ctx.is_main:
            _still_as_planned(todo)
        for home in dict.fromkeys(home for home, _ in scopes):
            if removed := sweep_temporaries(home):  # left by a killed run; a live one's are kept
                view.emit(views.TemporariesSwept(folder=home, files=len(removed)))
        for i, p in enumerate(todo, 1):
            run = partial(_run_one, p, plan, ctx, fingerprints, view)
            fingerprints[p.step.id] = _told(view, p, (i, len(todo)), run)
            result.ran.append(p.step.id)
    view.emit(
        views.ApplyFinished(ran=len(result.ran), up_to_date=len(result.skipped), duration_s=_since(start))
    )
    return result


def _refuse(plan: Plan, refused: list[PlannedStep], ctx: RunContext) -> NoReturn:
    """Raise why apply does not run. The plan was made without locks, so a folder another apply is
    writing may have looked foreign: its lock is taken first (LockHeld, exit 3, names the holder), and the
    refusals judged again under it. Only folders holding a neuroexec lock file are locked: a folder with
    none has no apply writing it, and apply creates nothing in a folder it refuses."""
    scopes = [(p.step.home, p.step.lock_scope) for p in refused if lock_file(p.step.home).exists()]
    index = {p.step.id: p for p in plan.steps}
    with locked(scopes if ctx.is_main else []):
        for p in refused:
            own = kind(p.step.kind).check
            blocked = any(index[d].action == REFUSED for d in p.step.deps)
            if not blocked and (own is None or own(p.step) is None):
                raise PlanStale(
                    f"{p.step.home} changed after this plan was made (another apply writing it?): "
                    f"{p.step.id} is no longer refused; run apply again."
                )
    lines = [f"  ! {p.step.id}: {'; '.join(p.reasons)}" for p in refused]
    raise PlanRefused("apply refused: fix these steps first (see `neuroexec plan`):\n" + "\n".join(lines))


def _still_as_planned(todo: list[PlannedStep]) -> None:
    """Under the locks, before anything is removed or run: each step's record, read fresh from disk, is
    the one the plan saw; otherwise another apply ran the step in between, and running this plan's
    removals would delete its fresh results."""
    records: dict[Path, dict | None] = {}
    for p in todo:
        home = p.step.home
        if home not in records:
            data, problem = read_state(state_file(home))
            records[home] = None if problem else data["steps"]  # unreadable: the step's record says so
        steps = records[home]
        if steps is not None and record_stamp(steps.get(p.step.record_key)) != p.seen:
            raise PlanStale(
                f"another apply ran {p.step.id} since this plan was made; run apply again "
                "(this one changed nothing)."
            )


def _view(ctx: RunContext) -> views.View:
    """Where this process tells what apply does: only rank 0 speaks (torchrun's other ranks would repeat
    every line); without a view of its own, today's lines through the context's reporter."""
    if not ctx.is_main:
        return views.Silent()
    return ctx.view or views.HumanView(ctx.reporter)


def _told(view: views.View, p: PlannedStep, at: tuple[int, int], run: Callable[[], tuple[str, dict]]) -> str:
    """`run` the step `p` between its started and its finished (or failed, or interrupted) events; `at`
    is (index, total) among the steps to run. Returns the step's fingerprint."""
    where = {"step": p.target, "index": at[0], "total": at[1]}  # a part: its own target
    view.emit(views.StepStarted(**where, kind=p.step.kind, action=p.action))
    start = time.monotonic()
    try:
        fp, outputs = run()
    except Exception as exc:  # StepFailed, or its record could not be written (a read-only folder)
        cause = exc.cause if isinstance(exc, StepFailed) else exc
        error, code = str(cause) or type(cause).__name__, getattr(exc, "exit_code", 1)
        view.emit(views.StepFailed(**where, duration_s=_since(start), error=error, exit_code=code))
        raise
    except KeyboardInterrupt:
        view.emit(views.StepInterrupted(**where, duration_s=_since(start)))
        raise
    view.emit(views.StepFinished(**where, duration_s=_since(start), outputs=outputs))
    return fp


def _since(start: float) -> float:
    return round(time.monotonic() - start, 3)


def _run_one(
    p: PlannedStep, plan: Plan, ctx: RunContext, fingerprints: dict[str, str | None], view: views.View
) -> tuple[str, dict]:
    """Run the step (its planned removals first, on rank 0), record it; its fingerprint and outputs."""
    step = p.step
    k = kind(step.kind)
    upstream = {d: fingerprints.get(d) or "" for d in step.deps}
    started = time.time()
    outputs = None
    try:
        if ctx.is_main:
            _remove_planned(p, view)
        if k.distributed:
            distributed.barrier(ctx)  # other ranks start once the planned removals are done
        if k.distributed or ctx.is_main:
            with cpu_threads(step.compute):
                outputs = k.run(step, ctx.for_step(step.compute, upstream))
    except Exception as exc:  # a user's problem (NeuroexecError) or a bug, whose traceback --debug shows
        full = isinstance(exc, OSError) and exc.errno in NO_ROOM  # a library's own write (TensorBoard's)
        raise StepFailed(step.id, DiskFull(exc.filename or step.home, exc) if full else exc) from exc
    finally:
        distributed.barrier(ctx)
    # Fingerprint after the run: input files are hashed once, here, and cached for later plans.
    store = plan.stores[step.home]
    fp, inputs, fresh = step_fingerprint(step, upstream, plan.stores)
    if ctx.is_main and p.records:  # a step narrowed to a part (one network) is finished by the step itself
        store.put(
            step.record_key,
            {
                "fingerprint": fp,
                "kind": step.kind,
                "status": "done",
                "config": step.config,
                "upstream": upstream,
                "inputs": inputs,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "duration_s": round(time.time() - started, 3),
                "outputs": outputs or {},
            },
            fresh,
        )
    return fp, outputs or {}


def _remove_planned(p: PlannedStep, view: views.View) -> None:
    """Delete exactly what the plan showed as this step's `-` lines (under the step's lock)."""
    for r in p.removals:
        view.emit(views.Removing(step=p.step.id, what=r.what, files=r.files()))
        for path in r.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

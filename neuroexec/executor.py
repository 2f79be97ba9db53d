"""apply: run the steps of a plan that are not up to date, in dependency order, under the locks of the
folders they write, recording each finished step so a re-run continues where it stopped."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from neuroexec import distributed
from neuroexec.atomic import NO_ROOM, sweep_temporaries
from neuroexec.context import RunContext
from neuroexec.errors import DiskFull, NeuroexecError, PlanRefused, StepFailed
from neuroexec.lock import locked
from neuroexec.plan.graph import NEW, REFUSED, UP_TO_DATE, Plan, PlannedStep, step_fingerprint
from neuroexec.plan.render import WORDS
from neuroexec.steps.registry import kind


@dataclass
class ApplyResult:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def apply(plan: Plan, ctx: RunContext, target: str | None = None) -> ApplyResult:
    selected = plan.select(target)
    refused = [p for p in selected if p.action == REFUSED]
    if refused:
        lines = [f"  ! {p.step.id}: {'; '.join(p.reasons)}" for p in refused]
        raise PlanRefused("apply refused: fix these steps first (see `neuroexec plan`):\n" + "\n".join(lines))
    todo = [p for p in selected if p.action != UP_TO_DATE]
    result = ApplyResult(skipped=[p.step.id for p in selected if p.action == UP_TO_DATE])
    rep = ctx.reporter
    if not todo:
        rep.info(f"Nothing to do: all {len(selected)} steps are up to date.")
        return result
    rep.info(f"Applying {len(todo)} of {len(selected)} steps ({len(result.skipped)} up to date).")
    scopes = [(p.step.home, p.step.lock_scope) for p in todo] if ctx.is_main else []
    fingerprints = {p.step.id: p.fingerprint for p in plan.steps if p.action == UP_TO_DATE}
    with locked(scopes):
        for home in dict.fromkeys(home for home, _ in scopes):
            if removed := sweep_temporaries(home):  # left by a killed run; a live one's are kept
                rep.info(f"Removed {len(removed)} temporary file(s) an interrupted run left in {home}.")
        for i, p in enumerate(todo, 1):
            rep.info(
                f"[{i}/{len(todo)}] {p.action} {p.step.id}" + (f" ({WORDS[NEW]})" if p.action == NEW else "")
            )
            start = time.monotonic()
            fingerprints[p.step.id] = _run_one(p, plan, ctx, fingerprints)
            result.ran.append(p.step.id)
            rep.info(f"      done in {time.monotonic() - start:.1f}s")
    rep.info(f"Applied {len(result.ran)} steps.")
    return result


def _run_one(p: PlannedStep, plan: Plan, ctx: RunContext, fingerprints: dict[str, str | None]) -> str:
    step = p.step
    k = kind(step.kind)
    upstream = {d: fingerprints.get(d) or "" for d in step.deps}
    started = time.time()
    outputs = None
    try:
        if ctx.is_main:
            _remove_planned(p, ctx)
        if k.distributed:
            distributed.barrier(ctx)  # other ranks start once the planned removals are done
        if k.distributed or ctx.is_main:
            outputs = k.run(step, ctx.for_step(step.compute, upstream))
    except NeuroexecError as exc:
        raise StepFailed(step.id, exc) from exc
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        if exc.errno in NO_ROOM:  # a library's own write (TensorBoard's events): name what we know
            raise StepFailed(step.id, DiskFull(exc.filename or step.home, exc)) from exc
        raise StepFailed(step.id, exc) from exc
    except Exception as exc:  # an unexpected bug: keep the traceback for --debug
        raise StepFailed(step.id, exc) from exc
    finally:
        distributed.barrier(ctx)
    # Fingerprint after the run: input files are hashed once, here, and cached for later plans.
    store = plan.stores[step.home]
    fp, inputs, fresh = step_fingerprint(step, upstream, plan.stores)
    if ctx.is_main:
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
    return fp


def _remove_planned(p: PlannedStep, ctx: RunContext) -> None:
    """Delete exactly what the plan showed as this step's `-` lines (under the step's lock)."""
    for r in p.removals:
        ctx.reporter.info(f"      - removing {r.what}: {r.files()} files")
        for path in r.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

"""The one small interface through which step kinds plug into the engine.

It belongs to the engine (plan, executor), which imports no step kind: a step kind is a module under
`neuroexec/steps/` (named in STEP_MODULES) that registers a `StepKind`: its name, how it expands a
spec into steps (ids, dependencies, input files, the config slice that decides its result) and a `run`
function. The engine (plan, executor) knows nothing else about it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroexec.spec.model import Compute, Spec


@dataclass(frozen=True)
class Step:
    """One unit of work. `config` (JSON-able) + upstream fingerprints + `inputs` identities decide it."""

    id: str
    kind: str
    home: Path  # folder whose .neuroexec/state.json records this step (locked during apply)
    config: dict[str, Any]
    deps: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()  # external files (not produced by other steps) this step reads
    payload: Any = field(default=None, compare=False, repr=False)  # typed objects for `run`
    # What apply locks inside `home`: "" the whole folder, or a part of it ("split-3") that applies
    # running other parts of the same folder do not touch (one split per cluster job).
    lock_scope: str = ""
    # Key of the step's record in home's state.json, when not its id: specs whose steps share an id and a
    # home (one CAPS extracted for two participants lists) keep one record each.
    state_key: str = ""
    # The compute block the step runs with: the executor resolves it into the step's RunContext
    # (`ctx.settings`: device, kernels, amp, loader). None for a step that computes nothing on a device.
    compute: Compute | None = field(default=None, compare=False, repr=False)

    @property
    def record_key(self) -> str:
        return self.state_key or self.id


@dataclass(frozen=True)
class Removal:
    """What apply deletes before running a step; the plan shows it as its own `-` line with the count
    of files (Terraform's destroy). Apply deletes exactly these paths and nothing else.

    Example: `Removal("results of group test, split 1", (maps / "split-1/best-loss/test",))`
    """

    what: str  # a short phrase: "results of group test, split 1"
    paths: tuple[Path, ...]  # files or folders (folders are removed recursively)

    def files(self) -> int:
        """How many files that is now (folders count their files, at any depth)."""
        count = 0
        for path in self.paths:
            if path.is_dir() and not path.is_symlink():
                count += sum(1 for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
            elif path.exists() or path.is_symlink():
                count += 1
        return count


@dataclass(frozen=True)
class StepKind:
    name: str
    expand: Callable[[Spec], list[Step]]
    run: Callable[[Step, Any], dict[str, Any] | None]  # (step, RunContext) -> outputs summary
    # Plan-time refusal: a reason (the step is shown `!`) or None. Must not write anything.
    check: Callable[[Step], str | None] | None = None
    # Run on every torchrun rank (DDP training); other kinds run on rank 0 only.
    distributed: bool = False
    # Key files the step leaves behind: a recorded step with one of them missing is re-planned (`~`).
    outputs: Callable[[Step], list[Path]] | None = None
    # Plan-time note on partial work a run would continue (an interrupted training), given the
    # fingerprints of the step's dependencies, or None. Must not write anything.
    resumes: Callable[[Step, dict[str, str] | None], str | None] | None = None
    # Plan-time: what running this step would delete (shown as `-` lines; the executor deletes exactly
    # these paths right before the step runs, and `run` deletes nothing itself). Must not write anything.
    removes: Callable[[Step], list[Removal]] | None = None
    # Plan-time lines added to a + or ~ step's reasons: what it leaves in place that it might be expected
    # to replace (another split's results, kept stale). Must not write anything.
    notes: Callable[[Step], list[str]] | None = None
    # `--target 'ID,PART'` (`model.M.train[split-i,network-k]`): the step narrowed to each part the
    # glob PART names, given the fingerprints of its dependencies (None when they run first), as (step,
    # the plan's reason, whether that part is done). A narrowed step runs without being recorded: the
    # step itself, applied later, finishes the work. Raises a NeuroexecError when there is no such part.
    parts: Callable[[Step, str, dict[str, str] | None], list[tuple[Step, str, bool]]] | None = None


_KINDS: dict[str, StepKind] = {}

# Modules that register step kinds, in the order their steps are listed in a plan.
STEP_MODULES = (
    "neuroexec.steps.generate",
    "neuroexec.steps.extract",
    "neuroexec.steps.split",
    "neuroexec.steps.train",
    "neuroexec.steps.group",
    "neuroexec.steps.predict",
    "neuroexec.steps.save_tensors",
    "neuroexec.steps.interpret",
)


def register(kind: StepKind) -> StepKind:
    _KINDS[kind.name] = kind
    return kind


def kinds() -> list[StepKind]:
    """All registered kinds (importing the step modules that exist)."""
    for module in STEP_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    # Plan order follows STEP_MODULES, whatever order other code imported the modules in.
    rank = {module: i for i, module in enumerate(STEP_MODULES)}
    return sorted(_KINDS.values(), key=lambda k: rank.get(k.run.__module__, len(rank)))


def kind(name: str) -> StepKind:
    kinds()
    return _KINDS[name]

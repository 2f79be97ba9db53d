"""The SLURM jobs that run a plan: its steps that are not up to date (and not in a job still queued or
running) grouped into jobs, each job after the jobs it needs: `aftercorr` on an array whose task i is
all that this array's task i needs of it (an evaluation array after its training array, one task per
split: split 1's evaluation runs when split 1's training ends, whatever split 0's does), `afterok`
otherwise (every task of the other job must succeed: several tasks per training, e.g. two selection
metrics, or a job queued by an earlier submission).

- `data`: the shared steps (generate, extract, split, group define) in one job, in plan order;
- `train-<model>`: an array, one training step per task (a split's lock covers only that split, so the
  tasks run side by side on one MAPS);
- for a multi-network model, `train-<model>-networks` first: an array, one task per network of each
  split left to train (`--target 'model.M.train[split-i,network-k]'`: a network's lock covers only that
  network, so the networks of a split train side by side); `train-<model>` then runs `afterok` on it, one
  task per split, which finds its networks trained and only writes the results and publishes the split;
- `evaluate`: an array, one task per trained model (model and split): its predict, save-tensors and
  interpret steps.

Steps with other needs go to another job of their kind (`train-cnn-2`), so no task waits for a job it
does not need. Each task runs `neuroexec apply SPEC --target STEP ...` (neuroexec/cluster/script.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neuroexec.cluster.resources import STEP_KINDS, Resources, resources_for
from neuroexec.errors import NeuroexecError, PlanRefused
from neuroexec.plan.graph import REFUSED, UP_TO_DATE, Plan, PlannedStep
from neuroexec.plan.registry import kind as step_kind


@dataclass
class Job:
    """One sbatch submission: `tasks` (step ids per array task; a single task for a plain job), the jobs
    of this submission it runs after (`after`, by name) and those queued earlier (`after_ids`)."""

    name: str
    kind: str
    tasks: list[list[str]] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    after_ids: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    trained: dict[str, str] = field(default_factory=dict, repr=False)  # evaluation step -> its training
    corr: list[str] = field(default_factory=list)  # of `after`: arrays it waits for task by task

    @property
    def array(self) -> bool:
        return self.kind != "data"

    def steps(self) -> list[str]:
        return [step for task in self.tasks for step in task]


def make_jobs(
    plan: Plan,
    target: list[str] | None = None,
    settings: tuple[dict[str, Any], dict[str, dict[str, str]]] = ({}, {}),
    queued: dict[str, str] | None = None,
) -> list[Job]:
    """The jobs for the selected steps not up to date; `queued`: step id -> job id of a job queued or
    running that will do it (a new job needing it runs after that one). `settings`: the spec's
    `[cluster]` table and the `--slurm-opt` flags."""
    queued = queued or {}
    selected = plan.select(target)
    refused = [p for p in selected if p.action == REFUSED]
    if refused:
        lines = [f"  ! {p.step.id}: {'; '.join(p.reasons)}" for p in refused]
        raise PlanRefused(
            "submission refused: fix these steps first (see `neuroexec plan`):\n" + "\n".join(lines)
        )
    todo = [p for p in selected if p.action != UP_TO_DATE and p.step.id not in queued]
    jobs: dict[tuple, Job] = {}
    where: dict[str, Job] = {}  # step id -> its new job
    for p in todo:
        kind = STEP_KINDS.get(p.step.kind, "data")
        after = _needs(p, where, kind)
        after_ids = sorted({queued[d] for d in p.step.deps if d in queued})
        networks = _networks(plan, p) if kind == "train" else []
        running = {queued[q.target] for q in networks if q.target in queued}  # the split waits for them
        networks = [q for q in networks if q.target not in queued]
        if networks:  # trained by a task each first: the split's task then only publishes
            nkey = (kind, f"{_owner(p, kind)}-networks", tuple(sorted(after)), tuple(after_ids))
            if nkey not in jobs:
                jobs[nkey] = Job(_name(kind, nkey[1], jobs), kind, after=sorted(after), after_ids=after_ids)
                jobs[nkey].resources = resources_for(kind, *settings, defaults=_defaults(p))
            jobs[nkey].tasks += [[q.target] for q in networks]
            after = after | {jobs[nkey].name}
        after_ids = sorted({*after_ids, *running})
        key = (kind, _owner(p, kind), tuple(sorted(after)), tuple(after_ids))
        if key not in jobs:
            jobs[key] = Job(_name(kind, key[1], jobs), kind, after=sorted(after), after_ids=after_ids)
            jobs[key].resources = resources_for(kind, *settings, defaults=_defaults(p))
        job = jobs[key]
        _place(job, p, where)
        where[p.step.id] = job
    named, deps = {job.name: job for job in jobs.values()}, {p.step.id: p.step.deps for p in todo}
    for job in jobs.values():
        job.corr = [name for name in job.after if _corresponds(job, named[name], deps)]
    return list(jobs.values())


def _networks(plan: Plan, p: PlannedStep) -> list[PlannedStep]:
    """The networks of a multi-network training step left to train, each its own step (`parts_of`);
    none for another training, or when the count is not known before the data exist (the split's task
    then trains them all)."""
    model = getattr(p.step.payload, "model", None)
    if (
        p.part is not None
        or step_kind(p.step.kind).parts is None
        or not getattr(model, "multi_network", False)
    ):
        return []
    try:
        parts = plan.parts_of(p, "network-*")
    except NeuroexecError:
        return []
    return [q for q in parts if q.action != UP_TO_DATE]


def _corresponds(job: Job, other: Job, deps: dict[str, list[str]]) -> bool:
    """Whether `job` may wait for `other` task by task (`aftercorr`): both arrays of as many tasks, and
    the steps of `other` that task i needs all in `other`'s task i."""
    if not (job.array and other.array and len(job.tasks) == len(other.tasks)):
        return False
    if any("," in step for step in other.steps()):  # a network array: its tasks are no splits' tasks
        return False
    mine = {step: i for i, task in enumerate(other.tasks) for step in task}
    return all(
        mine.get(d, i) == i for i, task in enumerate(job.tasks) for step in task for d in deps.get(step, ())
    )


def _needs(p: PlannedStep, where: dict[str, Job], kind: str) -> set[str]:
    """The new jobs a step runs after (a data step's data dependencies run before it in its own job)."""
    return {where[d].name for d in p.step.deps if d in where and not (kind == "data" == where[d].kind)}


def _owner(p: PlannedStep, kind: str) -> str:
    """What an array is made for: a training's model (its resources may differ); "" otherwise."""
    return p.step.id.split(".")[1] if kind == "train" else ""


def _name(kind: str, owner: str, jobs: dict[tuple, Job]) -> str:
    base = f"{kind}-{owner}" if owner else kind
    taken = {job.name for job in jobs.values()}
    n = 1
    name = base
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _place(job: Job, p: PlannedStep, where: dict[str, Job]) -> None:
    """A data step joins the data job's single task; a training gets its own task; an evaluation step
    joins the task of the other evaluation steps of the same trained model."""
    if job.kind == "data":
        if not job.tasks:
            job.tasks.append([])
        job.tasks[0].append(p.step.id)
        return
    model = _trained_model(p) if job.kind == "evaluate" else None
    if model is not None:
        job.trained[p.step.id] = model
        for task in job.tasks:
            if job.trained.get(task[0]) == model:
                task.append(p.step.id)
                return
    job.tasks.append([p.target])  # a network of a multi-network training: its own target


def _trained_model(p: PlannedStep) -> str | None:
    """The training step an evaluation step reads the model of (None: none in its dependencies)."""
    trains = [d for d in p.step.deps if ".train[" in d]
    return trains[0] if trains else None


def _defaults(p: PlannedStep) -> dict[str, Any]:
    """A job's own defaults: a CPU per DataLoader worker plus one, a GPU for a `device = "cuda"` step."""
    compute = p.step.compute
    if compute is None:
        return {"cpus": 1}
    gpus = 1 if str(compute.device).startswith("cuda") and STEP_KINDS.get(p.step.kind) != "data" else 0
    return {"cpus": max(1, compute.workers + 1), "gpus": gpus}

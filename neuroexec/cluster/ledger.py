"""The records of what `apply --slurm` submitted for a spec, in `<spec folder>/.neuroexec/slurm/<spec>/
jobs.json` (written atomically): per job its id, name, kind, steps per array task, the job ids it runs
after, its script, its log pattern and when it was submitted. `neuroexec status` and the next
`apply --slurm` read them with SLURM's view of each job."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuroexec import atomic, records
from neuroexec.errors import InputError

FORMAT = 1


@dataclass
class JobRecord:
    id: str
    name: str
    kind: str
    tasks: list[list[str]]
    after: list[str]
    script: str
    log: str  # sbatch's --output pattern
    submitted: str  # UTC, ISO 8601
    array: bool = True
    submission: int = 1

    def task_ids(self) -> list[str]:
        """The SLURM ids of its tasks (`12_0`, `12_1`; `12` for a plain job)."""
        return [f"{self.id}_{i}" for i in range(len(self.tasks))] if self.array else [self.id]

    def log_of(self, task: int) -> Path:
        """The log file of task `task`."""
        text = self.log.replace("%A", self.id).replace("%a", str(task)).replace("%j", self.id)
        return Path(text)


@dataclass
class Ledger:
    path: Path
    jobs: list[JobRecord] = field(default_factory=list)

    def submissions(self) -> int:
        return max((j.submission for j in self.jobs), default=0)

    def latest(self) -> dict[str, tuple[JobRecord, int]]:
        """For each step id, the last job (and its task) submitted for it."""
        found: dict[str, tuple[JobRecord, int]] = {}
        for job in self.jobs:
            for i, task in enumerate(job.tasks):
                for step in task:
                    found[step] = (job, i)
        return found

    def save(self) -> None:
        atomic.write_json(self.path, {"format": FORMAT, "jobs": [asdict(j) for j in self.jobs]})


def jobs_file(spec_path: Path) -> Path:
    return records.slurm_jobs_file(spec_path.parent, spec_path.stem)


def load(spec_path: Path) -> Ledger:
    """The spec's job records (none yet: an empty ledger)."""
    path = jobs_file(spec_path)
    if not path.exists():
        return Ledger(path)
    try:
        data = json.loads(path.read_text())
        return Ledger(path, [JobRecord(**j) for j in data["jobs"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            path,
            f"unreadable job records ({exc}); move the file away to submit again (jobs still queued are not seen)",
        ) from exc

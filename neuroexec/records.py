"""neuroexec's own files inside a folder it writes (a CAPS or a MAPS, its "home"): everything under
`<home>/.neuroexec/`, which ClinicaDL ignores. The folder's name is spelled here and only here.

>>> state_file(Path("maps/cnn"))
PosixPath('maps/cnn/.neuroexec/state.json')
>>> lock_file(Path("maps/cnn"), "split-0")
PosixPath('maps/cnn/.neuroexec/lock.split-0')
>>> lock_file(Path("maps/cnn"), "split-0/network-1")
PosixPath('maps/cnn/.neuroexec/lock.split-0.network-1')
>>> scope_of(lock_file(Path("maps/cnn"), "split-0/network-1"))
'split-0/network-1'
"""

from __future__ import annotations

from pathlib import Path

RECORDS_DIR = ".neuroexec"  # the folder's name: a home's entries besides it are the data
WHOLE = ""  # the lock scope that covers the whole folder


def records_dir(home: Path) -> Path:
    return Path(home) / RECORDS_DIR


def state_file(home: Path) -> Path:
    """What apply did in `home`: per finished step, its fingerprint, inputs, timings and outputs."""
    return records_dir(home) / "state.json"


def prepare_data_spec(caps: Path, mode: str) -> Path:
    """The spec `neuroexec prepare-data <mode>` builds and applies for a CAPS."""
    return records_dir(caps) / f"prepare-data-{mode}.toml"


def generate_spec(caps: Path, kind: str) -> Path:
    """The spec `neuroexec generate <kind>` builds and applies for the CAPS it generates."""
    return records_dir(caps) / f"generate-{kind}.toml"


def prepare_data_sessions(caps: Path) -> Path:
    """The sessions `prepare-data` extracts when no participants TSV is given (every sub-*/ses-*)."""
    return records_dir(caps) / "prepare-data-sessions.tsv"


def generation_marker(home: Path) -> Path:
    """Written by `generate` before its first file, removed when it finishes: a CAPS holding it is a
    generation neuroexec started and did not finish (killed, interrupted, disk full), which the next
    apply removes and generates again, never a user's data."""
    return records_dir(home) / "generating"


def state_lock(state: Path) -> Path:
    """The file a writer of the state file `state` locks while it reads, merges and writes it."""
    return Path(state).parent / "state.lock"


def lock_file(home: Path, scope: str = WHOLE) -> Path:
    """`lock` for the whole folder, `lock.<scope>` for one part of it (a split), `lock.<scope>.<part>`
    for a part of a part (`split-0/network-1`: one network of a split's multi-network training)."""
    return records_dir(home) / ("lock" if scope == WHOLE else f"lock.{scope.replace('/', '.')}")


def parent_scopes(scope: str) -> list[str]:
    """The scopes that contain `scope`, outermost first (WHOLE not included).

    >>> parent_scopes("split-0/network-1"), parent_scopes("split-0")
    (['split-0'], [])
    """
    parts = scope.split("/") if scope else []
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def scope_lock_files(home: Path) -> list[Path]:
    """The `lock.<scope>` files of `home`, sorted."""
    return sorted(records_dir(home).glob("lock.*"))


def lock_files(home: Path) -> list[Path]:
    """The lock files present in `home`: the whole folder's first, then the scopes'."""
    return [*sorted(records_dir(home).glob("lock")), *scope_lock_files(home)]


def scope_of(lock: Path) -> str:
    """The scope a lock file of lock_file() locks (WHOLE for `lock`)."""
    return Path(lock).name.removeprefix("lock").removeprefix(".").replace(".", "/")


def slurm_dir(home: Path, spec: str) -> Path:
    """What `apply --slurm` submitted for the spec file named `spec` whose folder is `home`: its job
    records, sbatch scripts and job logs."""
    return records_dir(home) / "slurm" / spec


def slurm_jobs_file(home: Path, spec: str) -> Path:
    """The records of the jobs submitted (ids, steps, scripts, logs, submit times)."""
    return slurm_dir(home, spec) / "jobs.json"


def slurm_script(home: Path, spec: str, submission: int, job: str) -> Path:
    """The sbatch script of job `job` of the `submission`-th `apply --slurm` (1, 2, ...)."""
    return slurm_dir(home, spec) / "scripts" / f"{submission}-{job}.sbatch"


def slurm_log(home: Path, spec: str, job: str, array: bool) -> Path:
    """A job's output file as sbatch's --output pattern (`%j` the job id, `%A_%a` array and task)."""
    return slurm_dir(home, spec) / "logs" / (f"{job}-%A_%a.log" if array else f"{job}-%j.log")

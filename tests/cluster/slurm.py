"""A real one-node SLURM for the tests: munged, slurmctld and slurmd started from a generated slurm.conf
in a temporary folder (Debian's slurm-wlm and munge), and helpers to wait for a job and read its log.

`start(root)` returns a `Slurm` (its `env` carries SLURM_CONF for sbatch/squeue/scancel/scontrol) or
raises `SlurmUnavailable` with the reason (a binary absent, a daemon that did not come up: its log tail).
The node is this host; accounting storage is none, so a finished job is known to `scontrol` only for
`MinJobAge` seconds (300: longer than a test waits).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
FINISHED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
}


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here; the message says why (the tests skip with it)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This host's node line (CPUs, sockets, cores, threads) from `slurmd -C`, memory kept small."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    first = out.splitlines()[0] if out else ""
    words = [w for w in first.split() if not w.startswith(("RealMemory=", "NodeName="))]
    return " ".join([f"NodeName={socket.gethostname()}", *words, "RealMemory=4000", "State=UNKNOWN"])


def _conf_text(root: Path, ports: tuple[int, int]) -> str:
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    host = socket.gethostname()
    lines = [
        "ClusterName=neuroexec-test",
        f"SlurmctldHost={host}",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        f"SlurmUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "MinJobAge=300",  # finished jobs stay known to scontrol this long (no accounting storage)
        "KillWait=2",
        "InactiveLimit=0",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "MessageTimeout=20",
        "RequeueExit=",
        _node_line(),
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
    ]
    return "\n".join(line for line in lines if not line.endswith("=")) + "\n"


@dataclass
class Slurm:
    """A running one-node SLURM; `env` is the environment that reaches it."""

    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sbatch, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def sbatch(self, script: Path | str, *options: str) -> str:
        """Submit a batch script; the job id."""
        return self.run("sbatch", "--parsable", *options, str(script)).stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key/value pairs ({} once SLURM forgot the job)."""
        done = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if done.returncode != 0:
            return {}
        pairs = {}
        for word in done.stdout.split():
            key, _, value = word.partition("=")
            pairs.setdefault(key, value)
        return pairs

    def state(self, job_id: str) -> str:
        """The job's state (PENDING, RUNNING, COMPLETED, ...), "" once SLURM forgot it."""
        return self.job(job_id).get("JobState", "")

    def wait(self, job_id: str, states: set[str] | None = None, timeout: float = 60) -> str:
        """Wait until the job (every task of an array) reaches one of `states` (default: finished)."""
        wanted = states or FINISHED
        deadline = time.monotonic() + timeout
        while True:
            now = self._states(job_id)
            if now and all(s in wanted for s in now):
                return now[0] if len(set(now)) == 1 else ",".join(now)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {now or 'unknown'} after {timeout} s\n{self.logs()}")
            time.sleep(0.3)

    def _states(self, job_id: str) -> list[str]:
        done = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        states = [w.split("=", 1)[1] for w in done.stdout.split() if w.startswith("JobState=")]
        return states

    def log(self, path: Path | str) -> str:
        """A job's output file (its --output), "" while it does not exist."""
        path = Path(path)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, lines: int = 30) -> str:
        """The tail of the daemons' logs (for failure messages)."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(parts)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job of this cluster (a controller too busy to answer in time is not an error here:
        the daemons are stopped next, and with them the jobs' steps)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run("scancel", "--full", "--user", str(os.geteuid()), check=False, timeout=timeout)

    def stop(self) -> None:
        """Cancel every job, stop the daemons (slurmd, slurmctld, munged), then kill what is left of this
        cluster's jobs. The cancel gets a few seconds only: a controller that is gone does not answer (it
        once took 38 s, when a test had sent SIGTERM to every child of the test process, daemons included)."""
        self.cancel_all(timeout=5)
        running = [p for p in reversed(self.processes) if p.poll() is None]
        for proc in running:  # all told at once, so that their shutdowns overlap
            proc.terminate()
        deadline = time.monotonic() + 5
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # a test cluster's state is thrown away: no need to wait longer
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()
        _kill_processes_with(f"SLURM_CONF={self.env['SLURM_CONF']}")


def processes_with(variable: str) -> list[int]:
    """The other processes whose environment holds `variable` (NAME=value)."""
    wanted, found = b"\0" + variable.encode() + b"\0", []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if wanted in b"\0" + environ.read_bytes() + b"\0" and int(environ.parent.name) != os.getpid():
                found.append(int(environ.parent.name))
    return found


def _kill_processes_with(variable: str, timeout: float = 5) -> None:
    """SIGKILL every other process whose environment holds `variable`: a test cluster's job steps and
    their children carry its SLURM_CONF. Again until none is left (one may be forking)."""
    deadline = time.monotonic() + timeout
    while (left := processes_with(variable)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _spawn(slurm: Slurm, argv: list[str], name: str) -> None:
    out = open(slurm.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115 (kept open for the daemon)
    proc = subprocess.Popen(argv, env=slurm.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    slurm.processes.append(proc)
    out.close()


def _wait_for(slurm: Slurm, what: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [p.args[0] for p in slurm.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(dead)} exited" if dead else f"not ready after {timeout} s"
            slurm.stop()
            raise SlurmUnavailable(f"SLURM could not start ({what}: {why})\n{slurm.logs()}")
        time.sleep(0.2)


def _start_munge(slurm: Slurm) -> None:
    munge = slurm.root / "munge"
    munge.mkdir(mode=0o700)
    key = munge / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    argv = [
        "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge}/munge.socket",
        f"--pid-file={munge}/munged.pid", f"--seed-file={munge}/munged.seed",
        f"--log-file={slurm.root}/log/munged.log",
    ]  # fmt: skip
    _spawn(slurm, argv, "munged")
    _wait_for(slurm, "munged", (munge / "munge.socket").exists, 15)


def _node_idle(slurm: Slurm) -> bool:
    done = slurm.run("sinfo", "--noheader", "-o", "%T", check=False, timeout=10)
    return done.returncode == 0 and done.stdout.strip() == "idle"


def start(root: Path) -> Slurm:
    """Start munged, slurmctld and slurmd under `root`, wait until the node is idle."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        raise SlurmUnavailable(
            f"SLURM is not installed here ({', '.join(missing)} not found: apt install slurm-wlm munge)"
        )
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(_conf_text(root, (_free_port(), _free_port())))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) and k != "SLURM_CONF"]:
        del env[key]
    slurm = Slurm(root=root, env=env)
    _start_munge(slurm)
    _spawn(slurm, ["slurmctld", "-D", "-i"], "slurmctld")
    _wait_for(slurm, "slurmctld", lambda: slurm.run("scontrol", "ping", check=False).returncode == 0, 30)
    _spawn(slurm, ["slurmd", "-D"], "slurmd")
    _wait_for(slurm, "slurmd, node idle", lambda: _node_idle(slurm), 30)
    return slurm

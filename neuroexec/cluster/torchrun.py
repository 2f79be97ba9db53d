"""A training step on several GPUs (or CPU processes) per node, in a SLURM job: `srun` starts one torchrun
per node, and torchrun's processes meet at a c10d rendezvous taken from SLURM's environment (the
job's first node, a port drawn from the job id, the job id as the rendezvous id). Each process then
joins the process group from torchrun's variables (neuroexec/distributed.py).

The line is written for a job script (bash): the `$SLURM_...` words are read when the job runs. SLURM's
warning before the time limit (`--signal=B:TERM@<grace>`) goes to the batch shell; srun, were it that
shell, would end the step at once on it. So srun runs under a small bash that passes the SIGTERM on
with `scancel --signal=TERM $SLURM_JOB_ID`, to every process of the job's steps (torchrun passes it
to its processes too): each training checkpoints at the same batch (training/preemption.py), rank 0
requeues the job (cluster/preempt.py), and srun ends when they have.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# the rendezvous port: BASE + job id % SPAN, so two jobs sharing a node rarely meet on one port
PORT_BASE, PORT_SPAN = 29400, 1000
FIRST_NODE = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
# runs its arguments (srun ...) in the background, SIGTERM passed on to the job's steps, and waits for them
FORWARD_TERM = 'trap "scancel --signal=TERM $SLURM_JOB_ID" TERM; "$@" & wait $!; wait $!'


def torchrun_executable() -> str:
    """The torchrun of this Python (its environment's `torchrun`, else `python -m torch.distributed.run`)."""
    beside = Path(sys.executable).parent / "torchrun"
    if beside.is_file():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m torch.distributed.run"


def command(argv: list[str], nproc_per_node: int) -> str:
    """The job script line that runs `neuroexec ARGV` in `nproc_per_node` processes on each node of the
    job (a job script may put `exec` before it: SLURM's SIGTERM then reaches the bash that passes it on).

    >>> line = command(["apply", "spec.toml", "--target", "model.cnn.train[split-0]"], 2)
    >>> print(line.replace(torchrun_executable(), "torchrun"))  # doctest: +NORMALIZE_WHITESPACE
    bash -c 'trap "scancel --signal=TERM $SLURM_JOB_ID" TERM; "$@" & wait $!; wait $!' srun
    srun --ntasks=$SLURM_NNODES --ntasks-per-node=1 --kill-on-bad-exit=1
    ${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK}
    torchrun --nnodes=$SLURM_NNODES --nproc-per-node=2 --rdzv-backend=c10d
    --rdzv-endpoint=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):$((29400 + SLURM_JOB_ID % 1000))
    --rdzv-id=$SLURM_JOB_ID -m neuroexec apply spec.toml --target 'model.cnn.train[split-0]'
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be at least 1, not {nproc_per_node}")
    srun = [
        "srun",
        "--ntasks=$SLURM_NNODES",  # one torchrun per node, whatever the job's --ntasks
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        "${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK}",  # srun does not inherit it
    ]
    torchrun = [
        torchrun_executable(),
        "--nnodes=$SLURM_NNODES",
        f"--nproc-per-node={nproc_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={FIRST_NODE}:$(({PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN}))",
        "--rdzv-id=$SLURM_JOB_ID",
        "-m",
        "neuroexec",
    ]
    return " ".join(
        ["bash", "-c", shlex.quote(FORWARD_TERM), "srun", *srun, *torchrun, *(shlex.quote(a) for a in argv)]
    )

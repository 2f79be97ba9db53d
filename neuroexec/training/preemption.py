"""SIGTERM during training (SLURM's warning before a time limit, `--signal`, or `kill`): the training
checkpoints at once, mid-epoch, and stops like an interrupt.

While the epochs run (`deferred()`), SIGTERM only sets a flag. The loop finishes the batch in hand (with
`train.accumulation_steps`, the accumulation step: the checkpoint falls after an optimizer step, with no
gradient pending), writes the split's resume checkpoint with the position in the epoch (`in_epoch_state`:
the batches done, the optimizer steps they made, the epoch's running predictions on every rank and
train.evaluation_steps' points), then stops as the SIGTERM handler in place before would have (`stop`:
the command line's raises KeyboardInterrupt; without one, `Preempted`, a KeyboardInterrupt): locks are
released, the staged training stays, the command exits 130 (and, in a SLURM job that asks for it,
requeues the job: neuroexec/cli and neuroexec/cluster/preempt.py). Resuming continues from the next
batch; the data order needs no state of its own, since an epoch's order is drawn from (compute.seed,
epoch) (training/loop.Trainer.sampler). DataLoader workers ignore SIGTERM (loop.ignore_sigterm), so a
signal sent to every process of a job step reaches the training only. Outside the epochs SIGTERM keeps
the command line's handling: KeyboardInterrupt where it lands.

For tests, `NEUROEXEC_SIGTERM_AT_BATCH=<epoch>:<batch>` (0-based) makes rank 0 send itself SIGTERM after
that batch of that epoch, as SLURM would at that moment; `NEUROEXEC_MIN_BATCH_SECONDS=<s>` makes each
training batch last at least s seconds (a training that outlasts SLURM's first warning on any machine;
the results are the same).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol

from neuroexec import distributed
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout
from neuroexec.training import resume
from neuroexec.training.loop import Position, Trainer, collector_state, restore_collector
from neuroexec.training.resume import Progress

SIGTERM_AT_BATCH_ENV = "NEUROEXEC_SIGTERM_AT_BATCH"
MIN_BATCH_SECONDS_ENV = "NEUROEXEC_MIN_BATCH_SECONDS"

_requested = threading.Event()
_deferring = threading.Event()
_previous: list = [signal.SIG_DFL]  # the handler `deferred()` replaced
_last_batch: list[float] = []  # when the previous batch ended (NEUROEXEC_MIN_BATCH_SECONDS)


class Preempted(KeyboardInterrupt):
    """The training stopped on SIGTERM, its checkpoint written."""


def _request(signum: int, frame: object) -> None:
    _requested.set()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGTERM sets the flag `requested()` reads instead of stopping the process where it is; the
    previous handler comes back at the end. A SIGTERM that came after the loop's last look at the flag
    stops the training as it leaves (`Preempted`; its last epoch's checkpoint is written), and so does
    an error after a SIGTERM (one that reached a process the training needed): stopped, not broken. Only
    the main thread can take signals: elsewhere SIGTERM keeps its handling.

    >>> try:
    ...     with deferred():
    ...         os.kill(os.getpid(), signal.SIGTERM)  # the process goes on, the flag is set
    ...         seen = requested()
    ... except Preempted as stop:  # and stops as it leaves
    ...     print(seen, stop)
    True SIGTERM after the last epoch's checkpoint
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, _request)
    if previous == signal.SIG_IGN:  # a process that ignores SIGTERM goes on ignoring it
        signal.signal(signal.SIGTERM, previous)
    _previous[0] = previous
    _deferring.set()
    try:
        yield
    except Exception as exc:
        if not _requested.is_set():
            raise
        _restore(previous)  # a failure after SIGTERM (a process it reached as well): stopped, not broken
        stop(f"SIGTERM, then {type(exc).__name__}: {exc}")
    finally:
        _restore(previous)
    if _requested.is_set():
        stop("SIGTERM after the last epoch's checkpoint")


def _restore(previous) -> None:
    _deferring.clear()
    signal.signal(signal.SIGTERM, previous)


def stop(why: str) -> NoReturn:
    """Stop on the SIGTERM `deferred()` held back, as the handler it replaced would have stopped (the
    command line's: KeyboardInterrupt, noting the SIGTERM for its exit); `Preempted` otherwise."""
    handler: Callable | int | None = _previous[0]
    if callable(handler):
        handler(signal.SIGTERM, None)
    raise Preempted(why)


def requested() -> bool:
    """Whether SIGTERM came since `deferred()` began (this process only: training/run.py asks every
    rank)."""
    return _requested.is_set()


def signal_for_test(epoch: int, batch: int, rank: int) -> None:
    """The test hooks: SIGTERM to this process after `batch` of `epoch` when NEUROEXEC_SIGTERM_AT_BATCH
    names them (rank 0 only, and only while `deferred()` takes it); a wait until the batch has lasted
    NEUROEXEC_MIN_BATCH_SECONDS (since the previous one ended)."""
    value = os.environ.get(SIGTERM_AT_BATCH_ENV, "").strip()
    if rank == 0 and _deferring.is_set() and value == f"{epoch}:{batch}":
        os.kill(os.getpid(), signal.SIGTERM)
    least = float(os.environ.get(MIN_BATCH_SECONDS_ENV, "0") or 0)
    if least > 0:
        since = time.monotonic() - (_last_batch[-1] if _last_batch else time.monotonic())
        time.sleep(max(0.0, least - since))
        _last_batch[:] = [time.monotonic()]


def in_epoch_state(
    epoch: int, batch: int, steps: int, collectors: list[dict], points: list
) -> dict[str, Any]:
    """What a mid-epoch checkpoint holds besides the weights, optimizer and RNG states (Progress's
    `in_epoch`; weights_only-loadable): the epoch, the batches done and the optimizer steps they made,
    each rank's running predictions (`collectors`, by rank) and train.evaluation_steps' points.

    >>> in_epoch_state(2, 5, 3, [{}], [(1, 0.5, {"loss": 1.0}, {"loss": 2.0})])["points"]
    [[1, 0.5, {'loss': 1.0}, {'loss': 2.0}]]
    """
    return {
        "epoch": epoch,
        "batch": batch,
        "steps": steps,
        "collectors": collectors,
        "points": [[int(i), float(t), dict(train), dict(valid)] for i, t, train, valid in points],
    }


def restored_points(state: dict[str, Any]) -> list[tuple]:
    """train.evaluation_steps' points of `in_epoch_state`, as the loop keeps them."""
    return [(int(i), float(t), dict(train), dict(valid)) for i, t, train, valid in state["points"]]


class _Run(Protocol):
    """What these helpers read of a split's training (training/run.SplitRun)."""

    ctx: Any
    maps: MapsLayout
    trainer: Trainer
    key: str
    network: int | None
    label: str

    @property
    def split(self) -> int: ...


class _Midway(Protocol):
    """training/run._Midway: the epoch, the training's start time and evaluation_steps' points."""

    epoch: int
    start: float
    points: list


def stop_requested(ctx) -> bool:
    """Whether SIGTERM reached any rank (all ranks ask after the same optimizer step)."""
    return distributed.any_rank(requested(), ctx)


def resumed_position(run: _Run, progress: Progress, midway: _Midway) -> Position | None:
    """Where in `midway.epoch` a mid-epoch checkpoint stopped (this rank's running predictions and
    optimizer steps; evaluation_steps' points put back into `midway`), or None: the epoch starts afresh."""
    state = progress.in_epoch
    if state is None or state["epoch"] != midway.epoch:
        return None
    progress.in_epoch = None
    collectors, ranks = state["collectors"], max(1, run.ctx.world_size)
    if len(collectors) != ranks:
        raise InputError(
            run.maps.tmp_dir(run.split),
            f"the training of split {run.split} was stopped mid-epoch with {len(collectors)} processes "
            f"and resumes with {ranks}: run it with {len(collectors)} (torchrun --nproc-per-node), or "
            "delete this folder to train the split from the start",
        )
    midway.points = restored_points(state)
    collector = restore_collector(run.trainer.collector(), collectors[run.ctx.rank])
    return Position(state["batch"], state["steps"], collector)


def save_in_epoch(run: _Run, progress: Progress, midway: _Midway, position: Position, batches: int) -> None:
    """Every rank, on SIGTERM mid-epoch: rank 0 writes the resume checkpoint at `position` (every rank's
    running predictions gathered into it); then all go on together, to stop."""
    collectors = distributed.gather_objects(collector_state(position.collector), run.ctx)
    if run.ctx.is_main:
        progress.elapsed = time.monotonic() - midway.start
        progress.in_epoch = in_epoch_state(
            midway.epoch, position.batch, position.steps, collectors, midway.points
        )
        resume.save_epoch(run.maps, run.split, run.trainer, progress, run.key, run.network)
        run.ctx.reporter.info(
            f"  {run.label}: SIGTERM: checkpoint written in epoch {midway.epoch + 1} after batch "
            f"{position.batch} of {batches}; apply resumes there"
        )
    distributed.barrier(run.ctx)

"""The images of a generation written by `n_proc` processes (`generate.n_proc`, ClinicaDL's `--n_proc`).

Every generated image draws from its own random stream, seeded from the settings and the image's
number, so the bytes written do not depend on which process writes it, nor on how many there are: the
step's fingerprint leaves `n_proc` out. The workers are forked (the job, a closure over the kind's
settings, is the workers' initargs, inherited rather than pickled) and run their torch operations on
one thread each; where the platform cannot fork, one process writes everything.

>>> written = []
>>> each(Writers(n_proc=1), 3, written.append, "demo")
>>> written
[0, 1, 2]
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from neuroexec.errors import NeuroexecError


@dataclass(frozen=True)
class Writers:
    """How a generation writes its images: the progress reporter (None: no bar) and the processes."""

    reporter: Any = None
    n_proc: int = 1


def writers_of(reporter: Any) -> Writers:
    """`reporter` as Writers: a Writers itself, else that reporter with one process."""
    return reporter if isinstance(reporter, Writers) else Writers(reporter)


_worker_job: list[Callable[[int], None]] = []  # in a worker only: its pool's job, set by _child_setup


def _child_setup(job: Callable[[int], None]) -> None:
    """A worker's start: `job` (passed as the pool's initargs, inherited through the fork, not pickled)
    and one thread (n_proc processes, not n_proc x the cores' threads)."""
    import torch

    torch.set_num_threads(1)
    _worker_job[:] = [job]


def _run(index: int) -> tuple[str, Any] | None:
    """Job `index` in a worker; a neuroexec error comes back as its class and state (its constructor
    takes other arguments than its message, so it does not unpickle as raised)."""
    try:
        _worker_job[0](index)
    except NeuroexecError as error:
        return type(error).__module__ + ":" + type(error).__qualname__, (str(error), error.__dict__)
    return None


def _raise(sent: tuple[str, Any]) -> None:
    import importlib

    where, (message, state) = sent
    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    raise error


def each(writers: Writers, count: int, job: Callable[[int], None], desc: str) -> None:
    """`job(i)` for i in 0..count-1, in `writers.n_proc` processes (at most one per job), with the
    progress bar of `writers.reporter` advancing as the jobs finish, in order."""
    workers, pool = min(writers.n_proc, count), None
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        done = map(job, range(count))
    else:
        pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), _child_setup, (job,))
        done = pool.map(_run, range(count))
    if writers.reporter is not None:
        done = writers.reporter.iterate(done, total=count, desc=desc)
    try:
        for sent in done:
            if sent is not None:
                _raise(sent)
    except BrokenProcessPool:
        raise NeuroexecError(
            f"a process writing the {desc} ended without finishing (killed: out of memory?) with "
            f"generate.n_proc = {writers.n_proc}; lower generate.n_proc (--n_proc) and apply again"
        ) from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

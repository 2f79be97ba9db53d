"""The rules an epoch's numbers follow, apart from the loop that makes them (`training/run.py`): early
stopping (ClinicaDL's relative tolerance), the stop of a diverged training, the training.tsv row, and
compute.deterministic, under which the epochs run.

    >>> log_row(0, 2, 1.5, {"loss": 0.5}, {"loss": 0.25})
    {'epoch': 0, 'iteration': 2, 'time': 1.5, 'loss_train': 0.5, 'loss_valid': 0.25}
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

import torch

from neuroexec.errors import NeuroexecError
from neuroexec.training.resume import Progress

# compute.compensation -> cuBLAS's workspace under deterministic CUDA, as ClinicaDL sets it: "memory" pays
# in memory (8 buffers of 4 MiB per stream), "time" in speed (8 of 16 KiB); both make cuBLAS deterministic.
CUBLAS_WORKSPACES = {"memory": ":4096:8", "time": ":16:8"}


def cublas_workspace(compensation: str) -> str:
    """The CUBLAS_WORKSPACE_CONFIG of compute.compensation.

    >>> cublas_workspace("time")
    ':16:8'
    """
    if compensation not in CUBLAS_WORKSPACES:
        raise NeuroexecError(
            f"compute.compensation must be 'memory' or 'time' (ClinicaDL's), not {compensation!r}"
        )
    return CUBLAS_WORKSPACES[compensation]


# The CUBLAS_WORKSPACE_CONFIG this process's cuBLAS read: the value a deterministic training that used
# CUDA ran under (PyTorch reads the variable once, at the first matrix product of the process).
_process_workspace: dict[str, str] = {}
CUBLAS_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"


@contextlib.contextmanager
def determinism(enabled: bool, compensation: str = "memory"):
    """compute.deterministic: deterministic algorithms (warn only) and cudnn flags, restored after; on
    CUDA, cuBLAS's workspace of compute.compensation, unless the environment sets CUBLAS_WORKSPACE_CONFIG
    (the user's value wins), restored after. PyTorch reads the variable once per process: a later
    deterministic CUDA training of the process that needs another workspace is refused before it trains
    (another apply, a new process, trains it under its own)."""
    cudnn = torch.backends.cudnn
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
    )
    previous = os.environ.get(CUBLAS_VARIABLE)
    workspace = None
    if enabled and torch.cuda.is_available():
        workspace = previous if previous is not None else cublas_workspace(compensation)
        _check_process_workspace(workspace, compensation)
        os.environ[CUBLAS_VARIABLE] = workspace
    inductor = os.environ.get(INDUCTOR_VARIABLE)
    if enabled and inductor is None:
        os.environ[INDUCTOR_VARIABLE] = "1"  # read by inductor's config if a compile imports it now
    _deterministic_algorithms(enabled, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = enabled, not enabled
    try:
        yield
    finally:
        _deterministic_algorithms(before[0], warn_only=before[1])
        cudnn.deterministic, cudnn.benchmark = before[2], before[3]
        if enabled and inductor is None:
            os.environ.pop(INDUCTOR_VARIABLE, None)
        if workspace is not None and torch.cuda.is_initialized():
            _process_workspace.setdefault("read", workspace)
        _restore_variable(previous)


# Inductor's deterministic mode (torch.compile), which its config reads from this variable when imported.
INDUCTOR_VARIABLE = "TORCHINDUCTOR_DETERMINISTIC"


def _deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """`torch.use_deterministic_algorithms`, without importing inductor in a process that compiles
    nothing. torch 2.13's function imports `torch._inductor.config` to set its `deterministic` flag, and
    with it dynamo: about 3 s of CPU in every process that trains. Where inductor's config is loaded
    (a compiled model), the public function sets both; otherwise only the eager flag is set, and a
    compile started inside `determinism` reads TORCHINDUCTOR_DETERMINISTIC, which it sets.

    >>> _deterministic_algorithms(True, warn_only=True); torch.are_deterministic_algorithms_enabled()
    True
    >>> _deterministic_algorithms(False, warn_only=False); torch.are_deterministic_algorithms_enabled()
    False
    """
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def _check_process_workspace(workspace: str, compensation: str) -> None:
    read = _process_workspace.get("read")
    if read is not None and read != workspace:
        raise NeuroexecError(
            f"compute.compensation = {compensation!r} needs cuBLAS's workspace {workspace} but this "
            f"process's cuBLAS already runs with {read} (an earlier deterministic CUDA training's: CUDA "
            "reads CUBLAS_WORKSPACE_CONFIG once per process): apply again, which trains this model in "
            "a new process and keeps the finished trainings, or give the deterministic CUDA models one "
            "compensation"
        )


def _restore_variable(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(CUBLAS_VARIABLE, None)
    else:
        os.environ[CUBLAS_VARIABLE] = previous


def early_stop(progress: Progress, valid_loss: float, patience: int, tolerance: float) -> bool:
    """Update the early-stopping counter with this epoch's validation loss; True to stop.
    ClinicaDL's rule: an epoch improves when its loss < best * (1 - tolerance) (`tolerance` is
    relative); stop after `patience` epochs without improvement, or at once on a NaN loss (after the
    first epoch). `patience` 0 disables it.

    >>> p = Progress(); [early_stop(p, v, 2, 0.0) for v in (1.0, 1.0, 1.0)]
    [False, False, True]
    """
    if patience <= 0:
        return False
    if progress.stop_best is None:
        progress.stop_best, progress.stop_bad_epochs = float(valid_loss), 0
        return False
    if math.isnan(valid_loss):
        return True
    if valid_loss < progress.stop_best - progress.stop_best * tolerance:
        progress.stop_best, progress.stop_bad_epochs = float(valid_loss), 0
    else:
        progress.stop_bad_epochs += 1
    return progress.stop_bad_epochs >= patience


def log_row(epoch: int, iteration: int, elapsed: float, train: dict, valid: dict) -> dict[str, float]:
    """A training.tsv row (ClinicaDL's): epoch, iteration (index of the epoch's last batch), time,
    then every metric with suffix _train, then _valid. A metric computed per class only (`<m>-<k>`,
    more than 2 classes) also gets its mean over the classes as `<m>`, as ClinicaDL logs it.

    >>> log_row(0, 2, 1.5, {"BA-0": 0.5, "BA-1": 1.0}, {"BA-0": 1.0, "BA-1": 1.0})["BA_train"]
    0.75
    """
    row: dict[str, float] = {"epoch": epoch, "iteration": iteration, "time": round(elapsed, 3)}
    for values, suffix in ((train, "train"), (valid, "valid")):
        for name, value in _with_class_means(values).items():
            row[f"{name}_{suffix}"] = value
    return row


def _with_class_means(values: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in values.items():
        base, _, k = name.rpartition("-")
        if base and k.isdigit() and base not in values and base not in out:
            per_class = [float(v) for n, v in values.items() if n.rpartition("-")[0] == base]
            out[base] = float(sum(per_class) / len(per_class))
        out[name] = value
    return out


def check_finite(epoch: int, train_loss: float, valid_loss: float, learning_rate: float, tmp: Path) -> None:
    """Stop a training whose loss is no longer a number (before anything of the epoch is saved): its
    weights would be NaN, and every later epoch, best model and result with them.

    >>> check_finite(2, float("nan"), 0.5, 10.0, Path("tmp"))
    Traceback (most recent call last):
    neuroexec.errors.NeuroexecError: training diverged at epoch 3 (train loss nan): ...
    """
    for name, value in (("train", train_loss), ("validation", valid_loss)):
        if not math.isfinite(value):
            kept = f" (the epochs before it wait in {tmp}; apply unchanged resumes them)" if epoch else ""
            raise NeuroexecError(
                f"training diverged at epoch {epoch + 1} ({name} loss {value}): lower train.learning_rate "
                f"(now {learning_rate:g}) in the spec and apply again, which trains the split from the "
                f"start{kept}"
            )

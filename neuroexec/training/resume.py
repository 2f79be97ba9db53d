"""Resuming a split's training: the per-epoch checkpoint files in `split-<i>/tmp/` and the random
number generator states that make a resumed run bit-identical to an uninterrupted one.

Everything saved here is tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)`
reads it (numpy's RNG key array travels as an int64 tensor).

For tests, `NEUROEXEC_INTERRUPT_AFTER_EPOCH=k` makes training raise KeyboardInterrupt right after the
checkpoint of epoch k (0-based) is written, as a Ctrl-C at that moment would; with
`NEUROEXEC_INTERRUPT_NETWORK=j` too, only in network j of a multi-network model.

A training stopped by SIGTERM checkpoints mid-epoch (training/preemption.py): the same three files, the
weights and optimizer of the last optimizer step (their `epoch` field still the last finished epoch's)
and the resume state's `progress.in_epoch` saying where in the next epoch they were taken.

A multi-network model's networks each keep their three files in `tmp/network-<k>/` (networks of one
split may train side by side, one apply each: `--target 'model.M.train[split-i,network-k]'`), and a
finished network leaves its record (`finished.json`, with the key) beside them. An interrupted run of an
earlier version kept its network's files in tmp/ itself (the resume state names the network):
`adopt_legacy` moves them into that network's folder, so it resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from neuroexec import atomic
from neuroexec.errors import InputError, NeuroexecError, UnsafeCheckpointError
from neuroexec.maps.checkpoints import load_checkpoint, save_model, save_optimizer
from neuroexec.maps.layout import MapsLayout

INTERRUPT_ENV = "NEUROEXEC_INTERRUPT_AFTER_EPOCH"
INTERRUPT_NETWORK_ENV = "NEUROEXEC_INTERRUPT_NETWORK"


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states as weights_only-loadable values. Only the
    model draws from them (dropout): the shuffle (seeded with compute.seed + epoch) and the loaders
    (compute.seed) have generators of their own (training.loop.Trainer), seeded alike on a resume."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [
            str(kind),
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "python": [int(version), list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_key(config: dict) -> str:
    """A short hash of the training config, stored in the resume state: a checkpoint made with other
    settings is never resumed."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(config: dict, split: int, upstream: Mapping[str, str], inputs: Sequence[Path]) -> str:
    """What an interrupted run must have been started with to be resumed: the training config, the split,
    the fingerprints of the steps training depends on (images, split tables, a transfer source trained
    by the same spec) and the size, mtime, ctime and inode of its input files (a transfer source from elsewhere).
    After a change to any of them, resuming would mix two trainings in one model, so training restarts.
    """
    files = {}
    for path in inputs:
        try:
            stat = Path(path).stat()
            # ctime and inode too: a byte changed with the mtime put back, or a replaced file, is noticed
            files[str(path)] = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        except OSError:
            files[str(path)] = "missing"
    return config_key({"config": config, "split": split, "upstream": dict(upstream), "inputs": files})


@dataclass
class Progress:
    """What the loop carries from epoch to epoch (and what a resumed run restores)."""

    epoch: int = -1  # last finished epoch (0-based); -1 before the first
    iteration: int = 0
    elapsed: float = 0.0  # seconds of training before this run (the `time` column continues)
    best: dict[str, float] = field(default_factory=dict)
    best_epoch: dict[str, int] = field(default_factory=dict)
    stop_best: float | None = None  # early stopping: best validation loss and epochs without progress
    stop_bad_epochs: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    # a checkpoint made mid-epoch on SIGTERM: where in epoch `epoch + 1` (training/preemption.py)
    in_epoch: dict[str, Any] | None = None

    def as_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "elapsed": float(self.elapsed),
            "best": {k: float(v) for k, v in self.best.items()},
            "best_epoch": dict(self.best_epoch),
            "stop_best": self.stop_best,
            "stop_bad_epochs": self.stop_bad_epochs,
            "rows": [dict(r) for r in self.rows],
            "in_epoch": self.in_epoch,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        return cls(**{k: state[k] for k in cls.__dataclass_fields__ if k in state})


class Saved(Protocol):
    """What an epoch's checkpoint is taken of (a training.loop.Trainer)."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    scheduler: Any  # a torch.optim.lr_scheduler scheduler, or None

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def optimizer_state_dict(self) -> dict: ...


def save_epoch(
    maps: MapsLayout, split: int, trainer: Saved, progress: Progress, key: str, network: int | None = None
) -> None:
    """Write tmp/checkpoint.pth.tar, tmp/optimizer.pth.tar (ClinicaDL) and tmp/resume.pth.tar of
    `trainer` (its weights, optimizer, learning-rate scheduler and scaler), each atomically; resume.pth.tar goes last, so a
    complete one means the other two match it. `network`: the network in training of a multi-network
    model (None for a single network)."""
    optimizer, scaler = trainer.optimizer, trainer.scaler
    name = trainer.net.architecture_name
    save_model(maps.checkpoint(split, network), trainer.state_dict(), progress.epoch, name)
    save_optimizer(
        maps.optimizer_checkpoint(split, network), trainer.optimizer_state_dict(), progress.epoch,
        type(optimizer).__name__,
    )  # fmt: skip
    state = {
        "config_key": key,
        "network": network,
        "sizes": _sizes(maps, split, network),
        "progress": progress.as_state(),
        "rng": rng_state(),
        # the learning-rate scheduler's counters (ClinicaDL saves none: its resume restarts them)
        "scheduler": trainer.scheduler.state_dict() if getattr(trainer, "scheduler", None) else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    atomic.save_torch(maps.resume_state(split, network), state)


def _sizes(maps: MapsLayout, split: int, network: int | None = None) -> dict[str, int]:
    """Sizes of the checkpoints and staged best models in tmp/ (by path in tmp/): plans notice a
    truncated one without loading it."""
    tmp = maps.tmp_dir(split)
    files = [maps.checkpoint(split, network), maps.optimizer_checkpoint(split, network)]
    best = maps.staged_best_model(split, "*", network)
    files += sorted(tmp.glob(str(best.relative_to(tmp))))  # every metric
    return {str(f.relative_to(tmp)): f.stat().st_size for f in files}


def _read_state(maps: MapsLayout, split: int, network: int | None = None) -> dict | None:
    """The resume state in tmp/ (of `network`), or None without one (a NeuroexecError when unreadable
    or refused)."""
    path = maps.resume_state(split, network)
    return load_checkpoint(path) if path.is_file() else None


def _resume_state(maps: MapsLayout, split: int, key: str, network: int | None = None) -> dict | None:
    """The resume state of an interrupted run made under `key`, or None."""
    state = _read_state(maps, split, network)
    return state if state is not None and state.get("config_key") == key else None


def damage(maps: MapsLayout, split: int, key: str, network: int | None = None) -> str | None:
    """Why the interrupted run that `key` would resume cannot be read, or None (nothing to resume, a
    run made under another key, or intact files). Reads the small resume state and file sizes only.

    >>> maps = MapsLayout(Path("maps/cnn"))
    >>> damage(maps, 0, "0123")  # nothing to resume
    >>> atomic.save_torch(maps.resume_state(0), {"config_key": "0123", "epoch": 3})
    >>> damage(maps, 0, "0123")  # intact
    >>> _ = maps.resume_state(0).write_bytes(maps.resume_state(0).read_bytes()[:100])  # cut short
    >>> damage(maps, 0, "0123")
    'resume.pth.tar is unreadable (corrupt or truncated?)'
    """
    name = maps.resume_state(split, network).name
    try:
        state = _read_state(maps, split, network)
    except UnsafeCheckpointError:
        return f"{name} is refused (loading it needs Python objects, which could run code)"
    except NeuroexecError:
        return f"{name} is unreadable (corrupt or truncated?)"
    if state is None or state.get("config_key") != key:
        return None
    tmp = maps.tmp_dir(split)
    required = {
        str(f.relative_to(tmp))
        for f in (maps.checkpoint(split, network), maps.optimizer_checkpoint(split, network))
    }
    for name, size in (state.get("sizes") or {}).items():
        file = tmp / name
        if not file.is_file():
            if name in required:
                return f"{name} is missing"
            continue  # a best model already published by a run stopped while it finished
        if file.stat().st_size != size:
            return f"{name} is truncated or altered ({file.stat().st_size} bytes, written with {size})"
    return None


def damaged_error(maps: MapsLayout, split: int, why: str, network: int | None = None) -> InputError:
    """The error apply stops with on a damaged interrupted run: the folder to delete and what it costs."""
    if network is None:
        return InputError(
            maps.tmp_dir(split),
            f"the interrupted training of split {split} cannot be resumed: {why}; delete this folder to "
            "train the split from the start (its epochs so far are lost), or restore the file",
        )
    return InputError(
        maps.resume_state(split, network).parent,
        f"the interrupted training of split {split} network-{network} cannot be resumed: {why}; delete "
        "this folder to train the network from the start (its epochs so far are lost), or restore the file",
    )


def resumable_epoch(maps: MapsLayout, split: int, key: str, network: int | None = None) -> int | None:
    """The last finished epoch (0-based) of an interrupted run that `key` resumes, or None. For plans:
    reads the small resume state only, not the checkpoints `load_resume` also checks."""
    try:
        state = _resume_state(maps, split, key, network)
    except NeuroexecError:
        return None
    return None if state is None else int(state["progress"]["epoch"])


def discarded_epoch(maps: MapsLayout, split: int, key: str | None, network: int | None = None) -> int | None:
    """The last finished epoch (0-based) of an interrupted run made under another key than `key` (any
    interrupted run when `key` is None: it is not known yet): a training under `key` starts over and
    removes it. None without one (or an unreadable one)."""
    try:
        state = _read_state(maps, split, network)
    except NeuroexecError:
        return None
    if state is None or (key is not None and state.get("config_key") == key):
        return None
    return int(state["progress"]["epoch"])


def load_resume(
    maps: MapsLayout, split: int, key: str, network: int | None = None
) -> tuple[dict, dict, dict] | None:
    """(model checkpoint, optimizer checkpoint, resume state) of an interrupted run with the same
    config (and of the same `network` of a multi-network model), or None (no checkpoint, or one made
    with other settings). A damaged run that `key` would resume raises `damaged_error`: starting over
    would silently discard it."""
    why = damage(maps, split, key, network)
    if why is not None:
        raise damaged_error(maps, split, why, network)
    files = _files(maps, split, network)
    if not all(f.is_file() for f in files):
        return None
    resume = _resume_state(maps, split, key, network)
    if resume is None or resume.get("network") != network:
        return None
    try:
        model, optimizer = load_checkpoint(files[0]), load_checkpoint(files[1])
    except UnsafeCheckpointError:
        raise
    except InputError as err:
        name = Path(err.path or files[0]).name
        raise damaged_error(maps, split, f"{name} is unreadable (corrupt or truncated?)") from None
    epoch = resume["progress"]["epoch"]
    if model.get("epoch") != epoch or optimizer.get("epoch") != epoch:
        return None
    return model, optimizer, resume


def _files(maps: MapsLayout, split: int, network: int | None) -> tuple[Path, Path, Path]:
    """The model checkpoint, optimizer checkpoint and resume state (of `network`)."""
    return (
        maps.checkpoint(split, network), maps.optimizer_checkpoint(split, network),
        maps.resume_state(split, network),
    )  # fmt: skip


def clear(maps: MapsLayout, split: int) -> None:
    """Remove tmp/ once training has finished."""
    shutil.rmtree(maps.tmp_dir(split), ignore_errors=True)


def interrupt_requested(epoch: int, network: int | None = None) -> bool:
    """The documented test hook: NEUROEXEC_INTERRUPT_AFTER_EPOCH=<epoch> (and, for a multi-network
    model, NEUROEXEC_INTERRUPT_NETWORK=<network>: in that network only)."""
    value = os.environ.get(INTERRUPT_ENV, "").strip()
    only = os.environ.get(INTERRUPT_NETWORK_ENV, "").strip()
    if only.isdigit() and network is not None and int(only) != network:
        return False
    return value.lstrip("-").isdigit() and int(value) == epoch


def interrupted_networks(maps: MapsLayout, split: int, key: str, count: int) -> dict[int, int]:
    """The networks of a multi-network model with an interrupted run that `key` resumes, with the last
    epoch (0-based) each finished (for plans and the apply that goes on); finished networks are not.
    An earlier version's run kept in tmp/ itself counts for its network (`network_slot`)."""
    found, done = {}, finished_networks(maps, split, key, count)
    for network in (k for k in range(count) if k not in done):
        epoch = resumable_epoch(maps, split, key, network_slot(maps, split, network))
        if epoch is not None:
            found[network] = epoch
    return found


def legacy_network(maps: MapsLayout, split: int) -> int | None:
    """The network whose interrupted run an earlier version kept in tmp/ itself (its resume state names
    it), when that network's folder holds no run of its own (apply then adopts it), else None. Reads
    only: for plans."""
    try:
        state = _read_state(maps, split)
    except NeuroexecError:
        return None
    k = None if state is None else state.get("network")
    return k if isinstance(k, int) and not maps.resume_state(split, k).exists() else None


def network_slot(maps: MapsLayout, split: int, network: int) -> int | None:
    """Where the resume state of `network` is read before apply adopts it: None (tmp/ itself) for the
    network of an earlier version's run (`legacy_network`), else the network's own folder."""
    return None if legacy_network(maps, split) == network else network


def adopt_legacy(maps: MapsLayout, split: int, network: int | None) -> None:
    """Move the checkpoint files that an earlier version's interrupted multi-network run kept in tmp/
    itself (its resume state names the network in training) into that network's folder, where this
    version resumes them; `network`: only when it is that one (None: whichever it is). Nothing without
    such files, or with unreadable ones (a damaged run of the old layout is discarded as another's)."""
    try:
        state = _read_state(maps, split)
    except NeuroexecError:
        return
    if state is None or not isinstance(state.get("network"), int):
        return
    k = state["network"]
    if (network is not None and k != network) or maps.resume_state(split, k).exists():
        return
    tmp, old, new = maps.tmp_dir(split), _files(maps, split, None), _files(maps, split, k)
    renamed = {str(a.relative_to(tmp)): str(b.relative_to(tmp)) for a, b in zip(old, new, strict=True)}
    new[0].parent.mkdir(parents=True, exist_ok=True)
    for a, b in zip(old[:2], new[:2], strict=True):
        if a.is_file():
            os.replace(a, b)
    state["sizes"] = {renamed.get(name, name): size for name, size in (state.get("sizes") or {}).items()}
    atomic.save_torch(new[2], state)
    old[2].unlink()


def mark_network_done(maps: MapsLayout, split: int, network: int, key: str, summary: dict) -> None:
    """Record that `network` finished under `key` (its best models and log wait in tmp/); its
    checkpoints, no longer needed, go."""
    atomic.write_json(maps.staged_network_done(split, network), {"config_key": key, **summary})
    for path in _files(maps, split, network):
        path.unlink(missing_ok=True)


def finished_networks(maps: MapsLayout, split: int, key: str, count: int) -> dict[int, dict]:
    """The networks that finished under `key` (any of them: networks may train in any order, side by
    side), with their summaries."""
    done: dict[int, dict] = {}
    for network in range(count):
        path = maps.staged_network_done(split, network)
        try:
            record = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("config_key") != key:
            continue
        done[network] = {k: v for k, v in record.items() if k != "config_key"}
    return done


def stale_networks(maps: MapsLayout, split: int, key: str, count: int) -> list[int]:
    """The networks recorded finished (`finished.json`) under another key than `key`: made with other
    settings or data, a training under `key` discards and retrains them."""
    done = finished_networks(maps, split, key, count)
    return [k for k in range(count) if maps.staged_network_done(split, k).is_file() and k not in done]


def clear_network(maps: MapsLayout, split: int, network: int, metrics: Sequence[str]) -> None:
    """Remove what an earlier start of `network` left in tmp/ (its checkpoints, log, events and best
    models), so that its training starts from nothing; the other networks' files stay."""
    for path in _files(maps, split, network):
        path.unlink(missing_ok=True)
    shutil.rmtree(maps.staged_tensorboard_dir(split, "train", network).parent, ignore_errors=True)
    maps.staged_training_tsv(split, network).unlink(missing_ok=True)
    maps.staged_network_done(split, network).unlink(missing_ok=True)
    for tracker in ("mlflow", "wandb"):  # train.track_exp: the next start opens a run of its own
        maps.staged_tracker_run(split, tracker, network).unlink(missing_ok=True)
    for metric in metrics:
        maps.staged_best_model(split, metric, network).unlink(missing_ok=True)
    for path in maps.staged_epoch_models(split, network):  # train.save_all_models
        path.unlink(missing_ok=True)

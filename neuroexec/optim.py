"""The optimizer and the learning-rate scheduler of a training, as ClinicaDL builds them.

ClinicaDL: `torch.optim.<optimizer>(parameters that require a gradient, lr=learning_rate,
weight_decay=weight_decay)`, every other argument torch's default; with `adaptive_learning_rate`,
`ReduceLROnPlateau(optimizer, mode="min", factor=0.1)` stepped after each epoch on the epoch's
validation loss. neuroexec adds `train.scheduler`: any class of torch.optim.lr_scheduler that takes
the optimizer and plain values, stepped once per epoch (ReduceLROnPlateau on the validation loss too).

A top-level module that knows no spec (as losses.py): training builds with it, and the spec's checks
try a scheduler's arguments with it at validate time.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import lr_scheduler

from neuroexec.errors import NeuroexecError

# Schedulers built from other schedulers or from Python functions, which a TOML table cannot give,
# and the abstract bases.
_NOT_FROM_VALUES = ("LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler", "LRScheduler",
                    "_LRScheduler")  # fmt: skip

Scheduler = lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau


def make_optimizer(
    name: str, parameters: Iterable[torch.nn.Parameter], learning_rate: float, weight_decay: float
) -> torch.optim.Optimizer:
    """torch.optim.<name> (Adam, AdamW, SGD, RMSprop, ...) of the parameters that require a gradient
    (the others are frozen: transfer.nb_unfrozen_layer), with the learning rate and weight decay.

    >>> make_optimizer("AdamW", torch.nn.Linear(2, 1).parameters(), 1e-4, 1e-2).defaults["weight_decay"]
    0.01
    >>> make_optimizer("Adamm", torch.nn.Linear(2, 1).parameters(), 1e-4, 0.0)
    Traceback (most recent call last):
    neuroexec.errors.NeuroexecError: train.optimizer: unknown optimizer 'Adamm' (expected a torch.optim class, e.g. Adam)
    """
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise NeuroexecError(
            f"train.optimizer: unknown optimizer {name!r} (expected a torch.optim class, e.g. Adam)"
        )
    trainable = [p for p in parameters if p.requires_grad]
    return cls(trainable, lr=learning_rate, weight_decay=weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    adaptive: bool = False,
    name: str | None = None,
    options: Iterable[tuple[str, Any]] = (),
) -> Scheduler | None:
    """The scheduler of a training on `optimizer`: ClinicaDL's adaptive learning rate (`adaptive`),
    the spec's train.scheduler (`name` and its `options`, name -> value pairs), or None.

    >>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    >>> scheduler = make_scheduler(optimizer, name="StepLR", options=[("step_size", 1), ("gamma", 0.5)])
    >>> optimizer.step(); step(scheduler, 0.3); optimizer.param_groups[0]["lr"]
    0.5
    """
    if adaptive:
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1)
    if name is None:
        return None
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in options}
    return scheduler_class(name)(optimizer, **kwargs)


def scheduler_class(name: str) -> type:
    """The torch.optim.lr_scheduler class `name`; a NeuroexecError for a name that is none, or one
    that needs other schedulers or functions."""
    cls = getattr(lr_scheduler, name, None)
    usable = isinstance(cls, type) and issubclass(
        cls, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)
    )
    if not usable or name in _NOT_FROM_VALUES:
        known = ", ".join(usable_schedulers())
        raise NeuroexecError(
            f"train.scheduler: {name!r} is not a scheduler it can build; expected one of {known}"
        )
    return cls


def usable_schedulers() -> list[str]:
    """The torch.optim.lr_scheduler classes a spec can name (built from the optimizer and values)."""
    names = []
    for name, cls in inspect.getmembers(lr_scheduler, inspect.isclass):
        base = (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)
        if issubclass(cls, base) and name not in _NOT_FROM_VALUES and not name.startswith("_"):
            names.append(name)
    return names


def scheduler_refusal(
    adaptive: bool,
    name: str | None,
    options: Iterable[tuple[str, Any]],
    learning_rate: float,
    optimizer: str = "Adam",
) -> str | None:
    """Why a training's learning-rate settings cannot be honoured, or None: both a scheduler and the
    adaptive learning rate, an unknown scheduler, or arguments its class refuses (tried on a dummy
    `optimizer` of the training's class, so that a typo fails at validate time, not at training).

    >>> scheduler_refusal(False, "StepLR", [("step_size", 2)], 1e-3)
    >>> scheduler_refusal(False, "StepLR", [("stepsize", 2)], 1e-3)
    "StepLR refuses these arguments: StepLR.__init__() got an unexpected keyword argument 'stepsize'"
    >>> scheduler_refusal(False, "CyclicLR", [("base_lr", 1e-4), ("max_lr", 1e-2)], 1e-3, "Adagrad")
    'CyclicLR refuses these arguments: optimizer must support momentum or beta1 with `cycle_momentum` option enabled'
    >>> scheduler_refusal(False, "StepLR", [("step_size", "x")], 1e-3)
    "StepLR fails at its first step with these arguments: TypeError: ..."
    """
    if name is None:
        return None
    if adaptive:
        return (
            "adaptive_learning_rate is a scheduler already (ReduceLROnPlateau): give either "
            "adaptive_learning_rate = true or a scheduler, not both"
        )
    try:
        dummy = make_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))], learning_rate, 0.0)
        scheduler = make_scheduler(dummy, name=name, options=options)
    except NeuroexecError as err:
        return str(err).removeprefix("train.scheduler: ")
    except (TypeError, ValueError, KeyError) as err:
        return f"{name} refuses these arguments: {err}"
    try:  # some arguments are only used by a step (StepLR's step_size): take the first epoch's
        dummy.step()
        step(scheduler, 0.0)
    except (TypeError, ValueError, KeyError, ArithmeticError, IndexError) as err:
        return f"{name} fails at its first step with these arguments: {type(err).__name__}: {err}"
    return None


def step_budget_refusal(name: str | None, options: Iterable[tuple[str, Any]], epochs: int) -> str | None:
    """Why a scheduler with a fixed number of steps would stop the training before its last epoch, or
    None. The scheduler steps once per epoch; OneCycleLR raises at the step after its `total_steps`
    (or `epochs` * `steps_per_epoch`), so it needs at least train.epochs of them.

    >>> step_budget_refusal("OneCycleLR", [("max_lr", 0.01), ("total_steps", 10)], 10)
    >>> step_budget_refusal("OneCycleLR", [("max_lr", 0.01), ("epochs", 2), ("steps_per_epoch", 3)], 10)
    'OneCycleLR steps 6 times (epochs 2 x steps_per_epoch 3) and this training steps it once per epoch, 10 times (train.epochs): give train.scheduler total_steps >= 10'
    """
    if name != "OneCycleLR":
        return None
    given = dict(options)
    if isinstance(given.get("total_steps"), int):
        total, how = given["total_steps"], f"total_steps = {given['total_steps']}"
    elif isinstance(given.get("epochs"), int) and isinstance(given.get("steps_per_epoch"), int):
        total = given["epochs"] * given["steps_per_epoch"]
        how = f"epochs {given['epochs']} x steps_per_epoch {given['steps_per_epoch']}"
    else:
        return None  # the class itself refuses a missing count (scheduler_refusal)
    if total >= epochs:
        return None
    return (
        f"OneCycleLR steps {total} times ({how}) and this training steps it once per epoch, {epochs} "
        f"times (train.epochs): give train.scheduler total_steps >= {epochs}"
    )


def step(scheduler: Scheduler | None, validation_loss: float) -> None:
    """One epoch's step: ReduceLROnPlateau on the epoch's validation loss, the others once."""
    if scheduler is None:
        return
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(validation_loss)
    else:
        scheduler.step()


def state_of(scheduler: Scheduler | None) -> dict[str, Any] | None:
    """The scheduler's state for the resume checkpoint (None without a scheduler)."""
    return None if scheduler is None else scheduler.state_dict()

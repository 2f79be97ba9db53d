"""The spec's checks of a model's training options and of the compute settings of a step (spec/checks.py
calls them; validate and plan see them): the loss, scheduler, sampler and label code against ClinicaDL's
rules, the observers' optional packages, and the device, mixed precision and FSDP against this machine
and the options FSDP does not combine with."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from neuroexec.errors import DeviceError
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Compute, Model, Spec

Add = Callable[[str, str], None]


# --- the training options: loss, schedulers, sampler, label code (ClinicaDL's rules for each)


def check_training(model: Model, add: Add) -> None:
    """train.loss is one of the task's (ClinicaDL's lists); the scheduler builds (not with the adaptive
    learning rate); the weighted sampler draws classes; a label code for classification, with an index
    for every diagnosis kept."""
    from neuroexec import losses, optim
    from neuroexec.nn import registry, vae_losses

    key, t = f"models.{model.name}", model.train
    scheduler = (t.scheduler.name, t.scheduler.options) if t.scheduler else (None, ())
    problems = {
        "train.loss": losses.refusal(model.task, t.loss)
        or vae_losses.check_loss(model.architecture, t.loss, registry.REGISTRY),  # VAE losses for VAEs only
        "train.scheduler": optim.scheduler_refusal(
            t.adaptive_learning_rate, *scheduler, t.learning_rate, t.optimizer
        )
        or optim.step_budget_refusal(*scheduler, t.epochs),
    }
    if t.sampler == "weighted" and model.task != "classification":
        problems["train.sampler"] = (
            "the weighted sampler draws classes: only for task = 'classification' (ClinicaDL's fails "
            "for regression and has none for reconstruction); use sampler = 'random'"
        )
    code = dict(model.label_code) if model.label_code is not None else None
    missing = [d for d in model.diagnoses or () if code is not None and d not in code]
    if code is not None and model.task != "classification":
        problems["label_code"] = f"class indices are for classification, not '{model.task}': remove it"
    elif missing:
        problems["label_code"] = f"no class index for the diagnoses {missing}: add them to label_code"
    if model.multi_network and model.compute.fully_sharded_data_parallel:
        problems["compute.fully_sharded_data_parallel"] = (
            "FSDP is not supported with multi_network = true: multi_network = true trains one after the "
            "other in one split, and each network's final results would need its FSDP wrapper undone "
            "(unshard) network by network, which neuroexec does for one network only; set one of them "
            "to false"
        )
    for name, why in problems.items():
        if why:
            add(f"{key}.{name}", why)


def check_compute(c: Compute, key: str, add: Add) -> None:
    """The settings of a compute block against each other and this machine. `device = 'cuda'` on a
    machine without a GPU is no problem of the spec (validate and plan only read, on a login node):
    `device_notes` says it, and apply refuses the steps that need it (`refuse_absent_gpu`)."""
    has_gpu = torch.cuda.is_available()
    gpu = c.device == "cuda" or (c.device == "auto" and has_gpu)
    if c.amp and not gpu:
        add(f"{key}.amp", "mixed precision needs a GPU device; this step would run on the CPU")
    if c.kernels == "triton" and not gpu:
        add(f"{key}.kernels", "'triton' kernels need a GPU device; use 'auto' or 'torch' on CPU")
    if c.amp and c.amp_dtype == "bfloat16" and has_gpu and gpu and not torch.cuda.is_bf16_supported():
        add(f"{key}.amp_dtype", "this GPU has no bfloat16; use 'float16' (ClinicaDL's) or 'auto'")
    if c.fully_sharded_data_parallel and not key.startswith("groups."):  # a group's: spec/shape.py
        for name, on in (("compile", c.compile), ("channels_last", c.channels_last is True)):
            if on:
                add(f"{key}.fully_sharded_data_parallel", _FSDP_CLASH[name])


NO_GPU = (
    "{key} = 'cuda' but this machine has no CUDA GPU: validate and plan work here, apply refuses; run "
    "apply where there is one (or set device = 'auto' or 'cpu')"
)


def device_notes(spec: Spec) -> list[str]:
    """Each compute block of `spec` that asks for `cuda` on a machine without a CUDA GPU, once: a model's
    or a group's block that inherits the spec's `[compute]` device is not named again; then the models
    asking for FSDP outside torchrun (`fsdp_notes`)."""
    if torch.cuda.is_available():
        return fsdp_notes(spec)
    blocks = [("compute", spec.compute)]
    blocks += [(f"models.{n}.compute", m.compute) for n, m in spec.models.items()]
    blocks += [(f"groups.{n}.compute", g.compute) for n, g in spec.groups.items()]
    top = spec.compute.device == "cuda"
    return [
        NO_GPU.format(key=f"{key}.device")
        for key, c in blocks
        if c.device == "cuda" and (key == "compute" or not top)
    ] + fsdp_notes(spec)


def fsdp_notes(spec: Spec) -> list[str]:
    """A note for validate and plan run outside torchrun when a model asks for FSDP: apply refuses it
    there (`refuse_absent_gpu`), so the way to launch it."""
    if under_torchrun():
        return []
    return [
        f"models.{name}.compute.fully_sharded_data_parallel: {fsdp_launch(spec)}"
        for name, m in spec.models.items()
        if m.compute.fully_sharded_data_parallel
    ]


def under_torchrun() -> bool:
    """Whether this process is one of several training processes (torchrun's WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def refuse_absent_gpu(spec: Spec, steps: list[tuple[str, Compute | None, str]]) -> None:
    """Raise DeviceError, before any step runs, when one of `steps` (id, compute, kind) asks for `cuda`
    and this machine has none, or trains with FSDP in one process (not under torchrun)."""
    sharded = [s for s, c, kind in steps if kind == "train" and c and c.fully_sharded_data_parallel]
    if sharded and not under_torchrun():
        raise DeviceError(
            f"apply refused: {sharded[0]} trains with fully_sharded_data_parallel: {fsdp_launch(spec)}"
        )
    needing = [step for step, c, _ in steps if c is not None and c.device == "cuda"]
    if needing and not torch.cuda.is_available():
        shown = ", ".join(needing[:3]) + (f" and {len(needing) - 3} more" if len(needing) > 3 else "")
        raise DeviceError(
            f"apply refused: {shown} run with compute.device = 'cuda' and this machine has no CUDA GPU; "
            "run apply where there is one (validate and plan work here), or set device = 'auto' or 'cpu'"
        )


# FSDP (training/run.make_trainer) shards the network over the processes of torchrun: alone there is
# nothing to shard (ClinicaDL 1.6.1 wraps a single process in FSDP all the same, to no effect).
FSDP_LAUNCH = (
    "FSDP shards the network over several training processes, and this is one; launch {} with "
    "torchrun (`torchrun --nproc-per-node N -m neuroexec {}`, N >= 2: one per GPU, or CPU "
    "processes), or {}"
)


def fsdp_launch(spec: Spec) -> str:
    """FSDP_LAUNCH for `spec`: the ClinicaDL front end's words for the spec `neuroexec train` wrote
    (`<MAPS>/.neuroexec/train.toml`: relaunch the command, or drop -fsdp), apply's for the others."""
    path = spec.path.resolve()
    if path == MapsLayout(path.parent.parent).command_spec("train"):
        return FSDP_LAUNCH.format("the command", "train ... -fsdp", "drop -fsdp")
    return FSDP_LAUNCH.format("apply", "apply SPEC", "set fully_sharded_data_parallel = false")


_FSDP_CLASH = {
    "compile": (
        "FSDP does not combine with compile = true in neuroexec: torch.compile of the FSDP wrapper "
        "(which its use_orig_params = true allows) is not checked here for a bit-identical, resumable "
        "training; set compile = false"
    ),
    "channels_last": (
        "FSDP does not combine with channels_last = true: its flat parameters hold each weight as a "
        "contiguous view, so the weights' channels_last layout is lost at the wrap; set channels_last "
        "= false"
    ),
}


# --- observers: their optional packages (training/observers.py)


def check_observers(model: Model, add: Add) -> None:
    """train.track_exp and train.calculate_emissions need their packages (neuroexec's extras)."""
    from neuroexec.extras import missing_package

    key, t = f"models.{model.name}.train", model.train
    why = missing_package(t.track_exp) if t.track_exp else None
    if why:
        add(f"{key}.track_exp", f"track_exp = '{t.track_exp}' {why}; or remove track_exp")
    why = missing_package("codecarbon") if t.calculate_emissions else None
    if why:
        add(f"{key}.calculate_emissions", f"calculate_emissions {why}; or set it to false")

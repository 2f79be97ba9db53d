"""The run context: each step's compute settings (device, kernels, amp, loader) are resolved once, by the
executor, from the step's own compute block, and reach every place that uses them (extraction too)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest
import torch

from neuroexec import context, ops
from neuroexec.context import RunContext, StepSettings, resolve_settings
from neuroexec.errors import DeviceError, InputError, StepFailed
from neuroexec.executor import apply
from neuroexec.plan import registry
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute

SPEC = """
version = 1
[compute]
device = "cpu"
kernels = "{kernels}"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 8, resolution_mm = 8, seed = 1 }}
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
{mode}
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1 }}
compute = {{ batch_size = 2 }}
[groups.validation]
from_training = "validation"
models = ["cnn"]
save_tensors = {{}}
compute = {{ batch_size = 3 }}
"""


PATCH = 'mode = "patch"\npatch = { size = 6, stride = 6 }'


def write(tmp_path: Path, kernels: str = "auto", mode: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(kernels=kernels, mode=mode))
    return path


def quiet() -> RunContext:
    return RunContext(reporter=Reporter(quiet=True))


def test_each_step_runs_with_its_own_settings_resolved_once_by_the_executor(tmp_path, monkeypatch):
    devices: list[str] = []  # every device resolution, from anywhere
    real = context.resolve_device
    monkeypatch.setattr(
        context, "resolve_device", lambda requested: devices.append(requested) or real(requested)
    )
    seen: dict[
        str, tuple[StepSettings | None, int]
    ] = {}  # step id -> (its settings, resolutions while it ran)
    for k in registry.kinds():

        @functools.wraps(k.run)
        def spy(step, ctx, run=k.run):
            before = len(devices)
            out = run(step, ctx)
            seen[step.id] = (ctx.settings, len(devices) - before)
            return out

        monkeypatch.setitem(registry._KINDS, k.name, dataclasses.replace(k, run=spy))

    path = write(tmp_path)
    plan = make_plan(load_spec(path))
    computes = {p.step.id: p.step.compute for p in plan.steps}
    result = apply(plan, quiet())
    resolutions = len(devices)

    assert {"dataset.demo.extract[image]", "model.cnn.train[split-0]"} <= set(result.ran)
    assert "group.validation.save-tensors[cnn/split-0/best-loss]" in result.ran
    batch_sizes = {}
    for step_id in result.ran:
        settings, during = seen[step_id]
        assert during == 0, f"{step_id} resolved a device itself"
        if computes[step_id] is None:
            assert settings is None, step_id
            continue
        assert settings == resolve_settings(computes[step_id]), step_id
        batch_sizes[step_id] = settings.batch_size
    assert resolutions == len(batch_sizes)  # one resolution per step that computes
    assert batch_sizes["dataset.demo.extract[image]"] == 4  # the spec's compute block
    assert batch_sizes["model.cnn.train[split-0]"] == 2  # the model's
    assert batch_sizes["group.validation.save-tensors[cnn/split-0/best-loss]"] == 3  # the group's


def spy_on_patches(monkeypatch) -> list[tuple[str, torch.device]]:
    """Record the kernel choice and the device of every ops.extract_patches call (then cut with torch)."""
    calls: list[tuple[str, torch.device]] = []
    real = ops.extract_patches

    def spy(volume, size, stride, kernels="auto", out=None):
        calls.append((kernels, volume.device))
        return real(volume, size, stride, kernels="torch", out=out)

    monkeypatch.setattr(ops, "extract_patches", spy)
    return calls


def test_the_spec_kernel_choice_reaches_patch_extraction(tmp_path, monkeypatch):
    calls = spy_on_patches(monkeypatch)
    apply(make_plan(load_spec(write(tmp_path, kernels="torch", mode=PATCH))), quiet(), target="dataset.*")
    assert calls == [("torch", torch.device("cpu"))] * 8  # one call per image, as the spec asks


def test_triton_kernels_reach_patch_extraction_on_the_step_device(tmp_path, monkeypatch):
    # The spec checks refuse 'triton' without a GPU, so the step's compute is changed after planning.
    plan = make_plan(load_spec(write(tmp_path, mode=PATCH)))
    apply(plan, quiet(), target="dataset.demo.generate")
    step = next(p.step for p in plan.steps if p.step.kind == "extract")
    step = dataclasses.replace(step, compute=dataclasses.replace(step.compute, kernels="triton"))
    calls = spy_on_patches(monkeypatch)
    registry.kind("extract").run(step, quiet().for_step(step.compute, {}))
    assert calls == [("triton", torch.device("cpu"))] * 8


def test_amp_on_the_cpu_stops_the_step_with_a_clear_error(tmp_path):
    plan = make_plan(load_spec(write(tmp_path)))
    for i, p in enumerate(plan.steps):  # the spec checks refuse amp without a GPU: bypass them
        if p.step.kind == "extract":
            amp = dataclasses.replace(p.step.compute, amp=True)
            plan.steps[i] = dataclasses.replace(p, step=dataclasses.replace(p.step, compute=amp))
    with pytest.raises(
        StepFailed, match=r"extract\[image\] failed: compute\.amp = true needs a CUDA GPU"
    ) as err:
        apply(plan, quiet(), target="dataset.*")
    assert isinstance(err.value.cause, DeviceError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_device_error():
    with pytest.raises(DeviceError, match=r"compute\.device = 'cuda' but no CUDA GPU.*use 'cpu' or 'auto'"):
        resolve_settings(Compute(device="cuda"))


def test_an_unknown_kernel_choice_is_an_input_error():
    with pytest.raises(InputError, match=r"compute\.kernels must be one of auto, triton, torch; got 'fast'"):
        resolve_settings(Compute(device="cpu", kernels="fast"))


def test_under_torchrun_each_rank_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)  # set by distributed.init_from_env
    ctx = RunContext(reporter=Reporter(quiet=True), rank=1, world_size=2).for_step(Compute(), {})
    assert ctx.settings.device == torch.device("cuda", 1)
    assert RunContext().for_step(Compute(), {}).settings.device == torch.device("cuda")  # alone: no index
    assert ctx.reporter.quiet  # rank 0 speaks for all


def test_a_function_called_outside_apply_resolves_its_compute_and_keeps_the_executors():
    resolved = RunContext().for_step(Compute(device="cpu", batch_size=5), {})
    assert resolved.with_settings(Compute(device="cpu", batch_size=7)) is resolved
    assert RunContext().with_settings(Compute(device="cpu", batch_size=7)).settings.batch_size == 7

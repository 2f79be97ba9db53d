"""compute.amp_dtype, compute.compensation and compute.fully_sharded_data_parallel: which autocast type
and loss scaler a GPU training gets, ClinicaDL's cuBLAS workspace under deterministic CUDA, and FSDP at
validate (its training: tests/training/test_fsdp.py). The GPU paths are checked at unit level here (this
suite runs without a GPU)."""

from __future__ import annotations

import contextlib
import json
import os

import pytest
import torch

from neuroexec.context import RunContext, StepSettings, choose_amp_dtype, resolve_settings
from neuroexec.errors import DeviceError, SpecError
from neuroexec.evaluation import amp_type
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute
from neuroexec.spec.training_checks import device_notes
from neuroexec.training import loop, run
from neuroexec.training.epoch_rules import determinism
from neuroexec.training.task import result_compute
from tests.training.training_specs import run_apply, write_spec

CUDA = "CUBLAS_WORKSPACE_CONFIG"


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch sees a GPU (without bfloat16 unless the test says so); nothing runs on it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    return monkeypatch


def test_auto_takes_bfloat16_where_the_gpu_has_it_and_float16_is_clinicadls():
    assert choose_amp_dtype("auto", bf16_supported=True) == torch.bfloat16
    assert choose_amp_dtype("auto", bf16_supported=False) == torch.float16
    assert choose_amp_dtype("float16", bf16_supported=True) == torch.float16
    assert choose_amp_dtype("bfloat16", bf16_supported=True) == torch.bfloat16
    with pytest.raises(DeviceError, match="amp_dtype = 'bfloat16' but this GPU has no bfloat16"):
        choose_amp_dtype("bfloat16", bf16_supported=False)


@pytest.mark.parametrize(
    ("amp", "requested", "bf16", "expected"),
    [
        (True, "auto", False, torch.float16),
        (True, "auto", True, torch.bfloat16),
        (True, "float16", True, torch.float16),
        (False, "float16", True, None),
    ],
)
def test_the_step_settings_carry_the_chosen_type(fake_gpu, amp, requested, bf16, expected):
    fake_gpu.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    settings = resolve_settings(Compute(device="cuda", amp=amp, amp_dtype=requested, kernels="torch"))
    assert settings.amp_dtype == expected and amp_type(settings) == expected


def test_amp_on_the_cpu_is_still_refused():
    with pytest.raises(DeviceError, match="compute.amp = true needs a CUDA GPU"):
        resolve_settings(Compute(device="cpu", amp=True, amp_dtype="float16"))
    assert amp_type(StepSettings(torch.device("cpu"), "torch", True, 0, 2, torch.float16)) is None


@pytest.mark.parametrize(("dtype", "scaled"), [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_only_float16_gets_clinicadls_grad_scaler(monkeypatch, dtype, scaled):
    made = []
    monkeypatch.setattr(loop.torch.amp, "GradScaler", lambda device, enabled: made.append(enabled))
    settings = StepSettings(torch.device("cuda"), "torch", dtype is not None, 0, 2, dtype)
    net = torch.nn.Linear(2, 1)
    ctx = RunContext(settings=settings)
    loop.Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), "regression", "image", Compute(), 1, ctx)
    assert made == [scaled]


def _compute_spec(tmp_path, compute: str):
    body = f'task = "classification"\ntrain = {{ epochs = 1 }}\ncompute = {{ {compute} }}'
    return write_spec(tmp_path, {"cnn": body})


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fsdp_validates_with_a_note_on_how_to_launch_it(tmp_path, fake_gpu, monkeypatch, device):
    # validate and plan accept it (apply refuses it in one process: tests/training/test_fsdp.py)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    spec = load_spec(_compute_spec(tmp_path, f'device = "{device}", fully_sharded_data_parallel = true'))
    assert spec.models["cnn"].compute.fully_sharded_data_parallel
    notes = [n for n in device_notes(spec) if "fully_sharded" in n]
    assert len(notes) == 1 and "-m neuroexec apply SPEC" in notes[0]
    assert "set fully_sharded_data_parallel = false" in notes[0] and "-fsdp" not in notes[0]
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: nothing to say
    assert not [n for n in device_notes(spec) if "fully_sharded" in n]


@pytest.mark.parametrize(("compensation", "workspace"), [("memory", ":4096:8"), ("time", ":16:8")])
def test_compensation_sets_clinicadls_cublas_workspace_on_deterministic_cuda(
    fake_gpu, compensation, workspace
):
    fake_gpu.delenv(CUDA, raising=False)
    with determinism(True, compensation):
        assert os.environ[CUDA] == workspace
    assert CUDA not in os.environ  # restored after the training
    with determinism(False, compensation):
        assert CUDA not in os.environ  # not deterministic: cuBLAS keeps its own


def test_compensation_is_left_alone_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(CUDA, raising=False)
    with determinism(True, "time"):
        assert CUDA not in os.environ


def test_compensation_enters_the_fingerprint_only_off_its_default_in_a_deterministic_run():
    assert "compensation" not in result_compute(Compute(deterministic=True))
    assert "compensation" not in result_compute(Compute(deterministic=False, compensation="time"))
    assert result_compute(Compute(deterministic=True, compensation="time"))["compensation"] == "time"


def test_a_training_runs_under_its_compensation_and_records_it(tmp_path, monkeypatch):
    seen = []

    @contextlib.contextmanager
    def recorded(enabled, compensation="memory"):
        seen.append((enabled, compensation))
        with determinism(enabled, compensation):
            yield

    monkeypatch.setattr(run, "determinism", recorded)
    run_apply(_compute_spec(tmp_path, 'compensation = "time"'))
    assert seen == [(True, "time")]  # the spec's compute block is deterministic
    raw = json.loads(MapsLayout(tmp_path / "maps/cnn").maps_json.read_text())
    assert raw["compensation"] == "time" and raw["fully_sharded_data_parallel"] is False


def test_bfloat16_on_a_gpu_without_it_is_refused_at_validate(tmp_path, fake_gpu):
    with pytest.raises(SpecError) as error:
        load_spec(_compute_spec(tmp_path, 'device = "cuda", amp = true, amp_dtype = "bfloat16"'))
    assert "models.cnn.compute.amp_dtype" in str(error.value) and "this GPU has no bfloat16" in str(
        error.value
    )

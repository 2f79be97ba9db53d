"""compute.fully_sharded_data_parallel: FSDP on 2 CPU processes (gloo, under torchrun) against DDP on
the same seed, its checkpoints under the network's own names, its resume after an interrupt and after a
SIGTERM mid-epoch (bit-identical to the uninterrupted FSDP run), and what stays refused.

Three torchrun launches share one module fixture: an FSDP training interrupted after epoch 1 and one
stopped by SIGTERM in epoch 2, side by side; then DDP and FSDP trained side by side while those two resume."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec import distributed
from neuroexec.errors import DeviceError, SpecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import build_network
from neuroexec.spec import load_spec
from neuroexec.training.preemption import SIGTERM_AT_BATCH_ENV
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import TORCHRUN, needs_torchrun, run_apply, write_spec

TRAIN = (
    'train = { epochs = 2, learning_rate = 1e-3, optimizer = "Adam", save_all_models = true, '
    'selection_metrics = ["loss"] }'
)
BODY = 'task = "classification"\ndropout = 0.25\n' + TRAIN
FSDP = BODY + "\ncompute = { fully_sharded_data_parallel = true }"
MODELS = {"ddp": BODY, "full": FSDP, "cut": FSDP, "term": FSDP}


def torchrun(path: Path, targets: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`neuroexec apply PATH --target ...` started in 2 CPU processes under torchrun, on a free port
    (`finish` waits for it)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    command = [str(TORCHRUN), "--nproc-per-node", "2", "--master-port", port, "-m", "neuroexec", "apply"]
    command += [str(path), *(arg for t in targets for arg in ("--target", t))]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )


def finish(launch: subprocess.Popen) -> tuple[int, str]:
    """(exit status, stdout and stderr) of a launch."""
    output, _ = launch.communicate(timeout=240)
    return launch.returncode, output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fsdp")
    path = write_spec(root, MODELS, subjects=12, batch_size=2)
    run_apply(path, target=["model.*.split", "dataset.*"])  # the data and the splits, in this process
    # the two interrupted FSDP trainings at the same time (their own models, ports and lock scopes)
    cut = torchrun(path, ["model.cut.train*"], {INTERRUPT_ENV: "0"})
    term = torchrun(path, ["model.term.train*"], {SIGTERM_AT_BATCH_ENV: "1:1"})
    (cut_rc, cut_out), (term_rc, term_out) = finish(cut), finish(term)
    assert cut_rc != 0 and term_rc != 0, cut_out[-2000:] + term_out[-2000:]
    assert "FSDP: the network is sharded over 2 processes" in cut_out
    assert "SIGTERM: checkpoint written in epoch 2 after batch 2" in term_out
    # ClinicaDL's optimizer.pth.tar: FSDP's full optimizer state dict, keyed by parameter names
    optimizer = torch.load(MapsLayout(root / "maps/cut").optimizer_checkpoint(0), weights_only=True)
    names = set(build_network("TinyCNN", (1, 21, 26, 22), 2, dropout=0.25).state_dict())
    assert optimizer["optimizer"]["state"] and set(optimizer["optimizer"]["state"]) <= names
    # DDP and FSDP side by side, and the two interrupted trainings resumed
    rc, output = finish(torchrun(path, [f"model.{m}.train*" for m in MODELS]))
    assert rc == 0, output[-6000:]
    assert output.count("resuming after epoch 1 of 2") == 2
    assert "resuming after epoch 1 of 2 and 2 batches of epoch 2" in output
    return root


def weights(root: Path, model: str, epoch: int) -> dict[str, torch.Tensor]:
    """The weights a training saved after `epoch` (train.save_all_models), loaded weights_only."""
    state, saved_epoch, _ = load_model_state(MapsLayout(root / "maps" / model).epoch_model(0, epoch))
    assert saved_epoch == epoch
    return state


@needs_torchrun
def test_fsdp_weights_load_in_a_plain_network(trained):
    state, epoch, name = load_model_state(MapsLayout(trained / "maps/full").best_model(0, "loss"))
    assert name == "TinyCNN" and not any("_fsdp" in key or key.startswith("module.") for key in state)
    plain = build_network("TinyCNN", (1, 21, 26, 22), 2, dropout=0.25)
    plain.load_state_dict(state)  # strict: every name and shape of the unwrapped network


@needs_torchrun
def test_fsdp_trains_the_model_ddp_trains(trained):
    # Same seed, data order, dropout draws and batch-norm statistics (rank 0's, as DDP broadcasts them).
    # FSDP reduce-scatters the gradients where DDP all-reduces them; with 2 gloo CPU processes the sums
    # come out the same, bit for bit (NCCL on GPUs may round otherwise: not tested here).
    for epoch in (0, 1):
        ddp, fsdp = weights(trained, "ddp", epoch), weights(trained, "full", epoch)
        assert ddp.keys() == fsdp.keys()
        for key, value in ddp.items():
            assert torch.equal(fsdp[key], value), (epoch, key)
    for group in ("validation", "train"):  # validation inside the loop (sharded), train by the plain copy
        results = {
            m: pd.read_csv(next((trained / "maps" / m).glob(f"split-0/best-loss/{group}/*image_level_prediction.tsv")), sep="\t")
            for m in ("ddp", "full")
        }  # fmt: skip
        numbers = [c for c in results["ddp"].columns if c.startswith("proba")]
        assert numbers and (results["ddp"]["true_label"] == results["full"]["true_label"]).all()
        pd.testing.assert_frame_equal(results["ddp"][numbers], results["full"][numbers], check_exact=True)


@needs_torchrun
@pytest.mark.parametrize("model", ["cut", "term"])
def test_a_resumed_fsdp_training_is_bit_identical(trained, model):
    for epoch in (0, 1):
        reference, resumed = weights(trained, "full", epoch), weights(trained, model, epoch)
        for key, value in reference.items():
            assert torch.equal(value, resumed[key]), (model, epoch, key)
    logs = [
        pd.read_csv(MapsLayout(trained / "maps" / m).training_tsv(0), sep="\t").drop(columns="time")
        for m in ("full", model)
    ]
    pd.testing.assert_frame_equal(*logs)


def problems(tmp_path: Path, compute: str, extra: str = "") -> str:
    path = write_spec(tmp_path, {"m": f'task = "classification"\n{extra}\ncompute = {{ {compute} }}'})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return str(err.value)


@pytest.mark.parametrize("option", ["compile = true", "channels_last = true"])
def test_fsdp_refuses_what_it_does_not_combine_with(tmp_path, option):
    said = problems(tmp_path, f"fully_sharded_data_parallel = true, {option}")
    assert "models.m.compute.fully_sharded_data_parallel" in said
    assert f"FSDP does not combine with {option}" in said


def test_fsdp_refuses_multi_network(tmp_path):
    extra = 'mode = "patch"\npatch = { size = 8, stride = 8 }\nmulti_network = true'
    said = problems(tmp_path, "fully_sharded_data_parallel = true", extra)
    assert "multi_network = true trains one after the other" in said


def test_fsdp_in_one_process_is_refused_at_apply_with_the_way_to_launch_it(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    path = write_spec(tmp_path, {"m": FSDP})
    assert not (tmp_path / "data").exists()
    with pytest.raises(DeviceError, match=r"model\.m\.train\[split-0\] trains with fully_sharded") as err:
        run_apply(path)
    assert "torchrun --nproc-per-node N -m neuroexec apply SPEC" in str(err.value)
    assert not (tmp_path / "data").exists()  # refused before any step ran


def test_fsdp_wraps_as_clinicadl_with_its_mixed_precision_on_a_gpu(monkeypatch):
    # The GPU case at unit level (no GPU here): the arguments FSDP is built with, ClinicaDL's.
    import torch.distributed.fsdp as fsdp

    built = []
    monkeypatch.setattr(fsdp, "FullyShardedDataParallel", lambda net, **kwargs: built.append(kwargs))
    net = torch.nn.Linear(2, 1)
    distributed.fsdp_wrap(net, torch.device("cuda", 1), torch.float16)
    distributed.fsdp_wrap(net, torch.device("cpu"), None)
    gpu, cpu = built
    assert gpu["sharding_strategy"] == fsdp.ShardingStrategy.FULL_SHARD and gpu["device_id"] == torch.device(
        "cuda", 1
    )
    precision = gpu["mixed_precision"]
    assert (precision.param_dtype, precision.reduce_dtype, precision.buffer_dtype) == (
        torch.float16, torch.float32, torch.float32)  # fmt: skip
    assert gpu["auto_wrap_policy"].keywords == {"min_num_params": 1} and cpu["mixed_precision"] is None

"""ClinicaDL's autoencoders not derived from a CNN (CAE_half, GeneratorUNet): shapes, ClinicaDL's
input-size rules as clear errors, and a CAE_half trained, predicted and saved through plan/apply."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch

from neuroexec.errors import NeuroexecError
from neuroexec.inference.model_io import load_model
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn.registry import build_architecture, entry
from neuroexec.nn.unet import GeneratorUNet
from tests.helpers import make_tiny_caps
from tests.training.training_specs import run_apply

CAE_SIZE = (1, 73, 89, 73)


def _build(name: str, size: tuple[int, ...], **options) -> torch.nn.Module:
    return build_architecture(name, "reconstruction", size, None, 0.0, options)


def test_cae_half_returns_a_reconstruction_of_the_input_shape_with_the_latent_size_asked():
    net = _build("CAE_half", CAE_SIZE, latent_space_size=3, normalization="instance")
    assert net.architecture_name == "CAE_half"
    state = net.state_dict()
    assert state["encoder.4.weight"].shape == (3, 128 * 10 * 12 * 10)  # the dense code
    assert state["decoder.0.weight"].shape == (256 * 10 * 12 * 10, 3)
    assert "encoder.0.layer.1.running_mean" in state  # batch norm whatever normalization says (ClinicaDL)
    x = torch.rand(2, *CAE_SIZE)
    for mode in ("train", "eval"):  # one tensor in both: the default reconstruction loss reads it
        getattr(net, mode)()
        with torch.no_grad():
            y = net(x)
        assert isinstance(y, torch.Tensor) and y.shape == x.shape and (y >= 0).all()  # ReLU output


@pytest.mark.parametrize("size", [(1, 80, 96, 80), (1, 72, 89, 73), (2, 73, 89, 73), (1, 73, 89)])
def test_cae_half_refuses_every_other_input_size(size):
    with pytest.raises(
        NeuroexecError, match=r"CAE_half reconstructs volumes of input size \(1, 73, 89, 73\) only"
    ):
        _build("CAE_half", size)


def test_cae_half_s_decoder_rebuilds_73x89x73_whatever_its_encoder_reads():
    # why the rule: (1, 80, 96, 80) feeds ClinicaDL's encoder too, but does not come back with its shape
    net = _build("CAE_half", CAE_SIZE, latent_space_size=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 80, 96, 80)).shape == (1, *CAE_SIZE)


@pytest.fixture(scope="module")
def unet() -> GeneratorUNet:
    torch.manual_seed(0)
    return _build("GeneratorUNet", (1, 64, 32, 32)).eval()


def test_generator_unet_returns_the_input_shape_for_multiples_of_32(unet):
    assert unet.architecture_name == "GeneratorUNet" and entry("GeneratorUNet").dims == (3,)
    for size in [(1, 64, 32, 32), (1, 32, 64, 32)]:  # the network does not depend on the size it is built for
        x = torch.rand(1, *size)
        with torch.no_grad():
            y = unet(x)
        assert y.shape == x.shape and (y.abs() <= 1).all()  # tanh output
    # instance norm has no parameters: the state dict holds the ten convolutions only
    assert {k.rsplit(".", 1)[0] for k in unet.state_dict()} == {
        *(f"down{i}.model.0" for i in range(1, 6)),
        *(f"up{i}.model.0" for i in range(1, 5)),
        "final.model.1",
    }


@pytest.mark.parametrize(
    "size, message, torch_error",
    [
        ((1, 48, 64, 64), "multiple of 32", RuntimeError),  # a skip and its decoder side differ
        ((1, 40, 64, 64), "multiple of 32", RuntimeError),
        ((1, 32, 32, 32), "larger than 32x32x32", ValueError),  # one voxel at the bottom: instance norm fails
        ((3, 64, 32, 32), "one-channel 3D volumes", RuntimeError),
        ((1, 64, 32), "one-channel 3D volumes", None),
    ],
)
def test_generator_unet_refuses_the_sizes_it_cannot_run_on(unet, size, message, torch_error):
    with pytest.raises(
        NeuroexecError, match=rf"architecture GeneratorUNet .*{message}.*got .*{re.escape(str(size))}"
    ):
        _build("GeneratorUNet", size)
    if torch_error is not None:  # the refused size is one the network really cannot reconstruct
        with pytest.raises(torch_error), torch.no_grad():
            unet(torch.rand(1, *size))


PLANNED = """
version = 1
[datasets.demo]
generate = { subjects = 6, resolution_mm = 8 }
[models.ae]
maps = "maps/ae"
dataset = "demo"
task = "reconstruction"
architecture = "%s"
split = { n_splits = 2, splits = [0] }
"""


@pytest.mark.parametrize(
    "name, rule", [("CAE_half", r"input size \(1, 73, 89, 73\) only"), ("GeneratorUNet", "multiple of 32")]
)
def test_the_plan_refuses_a_size_the_network_cannot_reconstruct_before_any_step_runs(tmp_path, name, rule):
    from neuroexec.plan.graph import REFUSED, make_plan
    from neuroexec.spec import load_spec

    (tmp_path / "spec.toml").write_text(PLANNED % name)
    plan = make_plan(load_spec(tmp_path / "spec.toml"))
    refused = [(p.step.id, " ".join(p.reasons)) for p in plan.steps if p.action == REFUSED]
    assert len(refused) == 1 and refused[0][0] == "model.ae.train[split-0]"
    assert re.search(
        rf"models\.ae\.architecture: architecture {name} .*{rule}.*\(1, 21, 26, 22\)", refused[0][1]
    )


SPEC = """
version = 1
[compute]
workers = 0
batch_size = 2
seed = 0
deterministic = true
[datasets.demo]
caps = "caps"
participants = "caps/participants.tsv"
[models.cae]
maps = "maps/cae"
dataset = "demo"
task = "reconstruction"
architecture = "CAE_half"
architecture_options = { latent_space_size = 2 }
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.validation]
from_training = "validation"
models = ["cae"]
save_tensors = {}
"""


def test_cae_half_trains_predicts_and_saves_tensors_through_apply(tmp_path):
    make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=CAE_SIZE[1:])
    (tmp_path / "spec.toml").write_text(SPEC)
    run_apply(tmp_path / "spec.toml")
    maps = MapsLayout(tmp_path / "maps/cae")
    raw = json.loads(maps.maps_json.read_text())
    assert raw["architecture"] == "CAE_half" and raw["latent_space_size"] == 2
    assert raw["input_size"] == list(CAE_SIZE)
    assert pd.read_csv(maps.training_tsv(0), sep="\t")["loss_train"].notna().all()

    model, _ = load_model(maps.root, 0, "loss")  # rebuilt from maps.json's options (latent 2)
    assert model.encoder[4].out_features == 2
    prediction = pd.read_csv(maps.prediction_tsv(0, "loss", "validation", "image"), sep="\t")
    assert list(prediction.columns[3:]) == ["MAE", "RMSE", "PSNR", "SSIM"] and len(prediction) == 2
    for p, s in zip(prediction.participant_id, prediction.session_id):
        x = torch.load(
            maps.tensor_file(0, "loss", "validation", p, s, "image", 0, "input"), weights_only=True
        )
        y = torch.load(
            maps.tensor_file(0, "loss", "validation", p, s, "image", 0, "output"), weights_only=True
        )
        assert x.shape == y.shape == CAE_SIZE
        with torch.no_grad():
            torch.testing.assert_close(y, model(x.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)

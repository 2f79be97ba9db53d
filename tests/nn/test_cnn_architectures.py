"""ClinicaDL 1.6.1's other CNNs (Stride_Conv5_FC3, ResNet3D, SqueezeExcitationCNN, resnet18): their
state-dict names, sizes rules, dropout, resnet18's local ImageNet weights, the refused names, and a
training and a prediction through apply. Against ClinicaDL itself: tests/compat/."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch

from neuroexec.errors import InputError, NeuroexecError
from neuroexec.inference.model_io import load_model
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn.registry import build_architecture, entry
from neuroexec.nn.resnet2d import build_resnet18, torchvision_names
from neuroexec.nn.resnet3d import build_resnet3d
from neuroexec.nn.secnn import SqueezeExcitation, build_secnn
from neuroexec.nn.stride_cnn import build_stride_conv5_fc3
from tests.training.training_specs import run_apply, train_task

SIZES = {
    "Stride_Conv5_FC3": [(1, 33, 35, 31), (3, 37, 30)],
    "ResNet3D": [(1, 63, 64, 70)],
    "SqueezeExcitationCNN": [(2, 63, 63, 65)],
    "resnet18": [(3, 64, 70)],
}
CASES = [(name, size) for name, sizes in SIZES.items() for size in sizes]


def _build(name: str, size: tuple[int, ...], output_size: int = 3, task: str = "classification", dropout=0.3):
    return build_architecture(name, task, size, output_size, dropout)


@pytest.mark.parametrize("name, size", CASES)
def test_each_architecture_builds_in_its_dims_and_returns_logits(name, size):
    net = _build(name, size)
    assert (net.architecture_name, net.input_size, net.output_size) == (name, size, 3)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, size", CASES)
def test_regression_has_one_output(name, size):
    net = _build(name, size, output_size=1, task="regression").eval()
    with torch.no_grad():
        assert net(torch.zeros(1, *size)).shape == (1, 1)


@pytest.mark.parametrize(
    "builder, size, first",
    [(build_stride_conv5_fc3, (1, 33, 35, 31), "fc.2"), (build_stride_conv5_fc3, (1, 37, 30), "fc.2"),
     (build_resnet3d, (1, 63, 70, 90), "fc.1"), (build_secnn, (1, 64, 66, 71), "fc.2")],
)  # fmt: skip
def test_first_linear_layer_is_sized_by_what_the_convolutions_give(builder, size, first):
    net = builder(size, 2, 0.0)
    with torch.no_grad():
        features = net.convolutions(torch.zeros(1, *size))
    assert net.state_dict()[f"{first}.weight"].shape[1] == math.prod(features.shape[1:])


def test_stride_conv5_fc3_has_clinicadl_names_and_strided_convolutions():
    net = build_stride_conv5_fc3((1, 33, 35, 31), 2, 0.25)
    weights = [k for k in net.state_dict() if k.endswith("weight")]
    expected = [f"convolutions.{3 * j + i}.weight" for j in range(5) for i in (0, 1)]
    assert weights == expected + ["fc.2.weight", "fc.4.weight", "fc.6.weight"]
    assert {net.convolutions[3 * j].stride for j in range(5)} == {(2, 2, 2)}
    assert net.fc[1].p == 0.25  # the spec's dropout
    assert type(build_stride_conv5_fc3((3, 33, 35), 2, 0.0).convolutions[0]).__name__ == "Conv2d"


def test_residual_networks_have_clinicadl_names_and_their_fixed_dropout():
    resnet, secnn = build_resnet3d((1, 63, 63, 63), 2, 0.0), build_secnn((1, 63, 63, 63), 2, 0.0)
    r, s = resnet.state_dict(), secnn.state_dict()
    assert {
        "convolutions.4.0.shortcut.0.weight",
        "convolutions.0.0.bn2.running_var",
        "fc.1.weight",
        "fc.4.bias",
    } <= set(r)
    assert not any("se_block" in k for k in r)
    assert s["convolutions.0.0.se_block.fc1.weight"].shape == (1, 8)  # 8 channels // 8
    assert s["convolutions.4.0.se_block.fc2.weight"].shape == (128, 16)
    assert {"fc.2.weight", "fc.4.weight"} <= set(s) and not any(k.startswith("fc.1.") for k in s)
    assert (
        r["convolutions.0.0.conv1.weight"].shape == (8, 1, 3, 3, 3) and "convolutions.0.0.conv1.bias" not in r
    )
    # ClinicaDL's dropouts, whatever the spec says
    assert [m.p for m in resnet.fc if isinstance(m, torch.nn.Dropout)] == [0.8]
    assert [m.p for m in secnn.fc if isinstance(m, torch.nn.Dropout)] == [0.5]


def test_squeeze_excitation_rescales_each_channel_by_its_mean():
    block = SqueezeExcitation(16)
    x = torch.randn(2, 16, 3, 4, 5)
    with torch.no_grad():
        gate = torch.sigmoid(block.fc2(torch.relu(block.fc1(x.mean(dim=(2, 3, 4))))))
        assert torch.allclose(block(x), x * gate[:, :, None, None, None])


@pytest.mark.parametrize(
    "name, size, says",
    [
        ("ResNet3D", (1, 62, 80, 80), "needs every spatial size >= 63"),
        ("SqueezeExcitationCNN", (1, 80, 80, 40), "needs every spatial size >= 63"),
        ("ResNet3D", (1, 80, 80), "builds for 3D volumes"),
        ("resnet18", (3, 64, 64, 64), "builds for 2D slices"),
        ("resnet18", (1, 64, 64), 'slice mode to "rgb"'),
        (
            "Stride_Conv5_FC3",
            (1, 20),
            "builds for 3D volumes (input size (channels, depth, height, width)) or 2D",
        ),
        ("Stride_Conv5_FC3", (1, 0, 20), "got (1, 0, 20)"),
        ("Stride_Conv5_FC3", (1, 32, 32, 32), "needs a spatial size >= 33 along at least one axis"),
        ("resnet18", (3, 32, 20), "needs a spatial size >= 33 along at least one axis"),
    ],
)
def test_sizes_a_network_cannot_take_are_clear_errors(name, size, says):
    with pytest.raises(NeuroexecError, match=f"^architecture {name} ") as err:
        build_architecture(name, "classification", size, 2)
    assert says in str(err.value)


@pytest.mark.parametrize("name, size", [("Stride_Conv5_FC3", (1, 33, 5, 5)), ("resnet18", (3, 2, 33))])
def test_one_side_of_33_is_enough_for_the_strided_networks(name, size):
    net = _build(name, size).train()
    net(torch.randn(1, *size)).sum().backward()  # a batch of one trains: two values per channel at the end


def test_the_smallest_residual_input_runs():
    net = build_resnet3d((1, 63, 63, 63), 2, 0.0).eval()
    with torch.no_grad():
        assert net.convolutions(torch.zeros(1, 1, 63, 63, 63)).shape == (1, 128, 1, 1, 1)


@pytest.mark.parametrize("name", ["Conv5_FC3_SSDA", "RandomArchitecture"])
def test_out_of_scope_clinicadl_architectures_are_refused_by_name(name):
    with pytest.raises(
        NeuroexecError, match=f"architecture {name}: ClinicaDL's .* not supported by neuroexec"
    ):
        entry(name)


def _torchvision_file(path: Path, seed: int, legacy: bool = False) -> dict[str, torch.Tensor]:
    """A torchvision-named resnet18 state dict (our random network's), saved to `path`; `legacy`: without
    num_batches_tracked, as torchvision's 2017 ImageNet file."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torchvision_names(build_resnet18((3, 64, 64), 2, 0.0, weights=None).state_dict())
    state = {k: v for k, v in state.items() if not (legacy and k.endswith("num_batches_tracked"))}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("legacy", [False, True])
def test_resnet18_loads_a_torchvision_weights_file_as_clinicadl_maps_it(tmp_path, legacy):
    saved = _torchvision_file(tmp_path / "imagenet.pth", seed=7, legacy=legacy)
    assert "layer4.1.bn2.running_var" in saved and "fc.weight" in saved
    torch.manual_seed(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights given: no warning
        net = build_resnet18((3, 40, 50), 2, 0.5, weights=tmp_path / "imagenet.pth")
    state = net.state_dict()
    assert torch.equal(state["convolutions.0.weight"], saved["conv1.weight"])
    assert torch.equal(state["convolutions.7.1.bn2.running_var"], saved["layer4.1.bn2.running_var"])
    assert torch.equal(state["convolutions.5.0.downsample.0.weight"], saved["layer2.0.downsample.0.weight"])
    assert torch.equal(state["fc.1.weight"], saved["fc.weight"])
    assert set(torchvision_names(state)) >= set(saved)
    assert state["fc.fc_out.weight"].shape == (2, 1000)


def test_resnet18_without_weights_warns_that_clinicadl_would_use_imagenet():
    with pytest.warns(UserWarning, match="ClinicaDL would have used torchvision's ImageNet weights"):
        build_architecture("resnet18", "classification", (3, 64, 64), 2, 0.0, {"weights": None})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt for a saved state dict (a MAPS's): no warning
        build_architecture("resnet18", "classification", (3, 64, 64), 2, 0.0, {"latent_space_size": 128})


def test_resnet18_refuses_a_missing_or_foreign_weights_file(tmp_path):
    with pytest.raises(InputError, match=r"architecture_options\.weights\]: resnet18 weights file not found"):
        build_resnet18((3, 64, 64), 2, 0.0, weights=tmp_path / "absent.pth")
    torch.save(
        build_architecture("Conv5_FC3", "classification", (3, 40, 40), 2).state_dict(), tmp_path / "cnn.pth"
    )
    with pytest.raises(
        InputError,
        match=r"not a torchvision resnet18 state dict \(missing fc\.bias, fc\.weight, layer1\.0\.bn1\.bias; unexpected",
    ):
        build_resnet18((3, 64, 64), 2, 0.0, weights=tmp_path / "cnn.pth")
    state = torch.load(_write_shifted(tmp_path), weights_only=True)
    assert state["fc.weight"].shape == (10, 512)
    with pytest.raises(InputError, match=r"\(wrong shape for fc\.bias, fc\.weight\)"):
        build_resnet18((3, 64, 64), 2, 0.0, weights=tmp_path / "ten.pth")


def _write_shifted(tmp_path: Path) -> Path:
    """A resnet18 file with a 10-class classifier (not ImageNet's 1000)."""
    state = _torchvision_file(tmp_path / "ten.pth", seed=1)
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)
    torch.save(state, tmp_path / "ten.pth")
    return tmp_path / "ten.pth"


# Two models trained for 1 epoch through apply (6 mm images, 28 x 35 x 30): Stride_Conv5_FC3 on images,
# resnet18 on 3 RGB slices per image with a weights file; a group predicts both.
SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
seed = 0
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 6, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 6, seed = 5, subject_offset = 100 }
[models.stride]
maps = "maps/stride"
dataset = "demo"
architecture = "Stride_Conv5_FC3"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[models.rn18]
maps = "maps/rn18"
dataset = "demo"
architecture = "resnet18"
mode = "slice"
slice = { direction = 2, mode = "rgb", discarded = [13, 14] }
architecture_options = { weights = "imagenet.pth" }
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-4 }
[groups.test]
dataset = "other"
models = ["stride", "rn18"]
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cnn_architectures")
    _torchvision_file(root / "imagenet.pth", seed=3)
    (root / "spec.toml").write_text(SPEC)
    run_apply(root / "spec.toml")
    return root


@pytest.mark.parametrize("model, name", [("stride", "Stride_Conv5_FC3"), ("rn18", "resnet18")])
def test_trains_one_epoch_through_apply_and_predicts(trained, model, name):
    maps = MapsLayout(trained / "maps" / model)
    assert json.loads(maps.maps_json.read_text())["architecture"] == name
    state, _, saved_name = load_model_state(maps.best_model(0, "loss"))
    assert saved_name == name
    assert set(state) == set(
        _build(name, tuple(json.loads(maps.maps_json.read_text())["input_size"]), 2).state_dict()
    )
    predictions = maps.prediction_tsv(0, "loss", "test", "image").read_text().splitlines()
    assert len(predictions) == 1 + 4
    net, _ = load_model(trained / "maps" / model, 0, "loss")
    assert net.architecture_name == name and not net.training


def test_resnet18_trains_from_the_weights_file(trained):
    """The trained network's ImageNet part moved from the file's values (one epoch) but kept its names;
    the file is an input of the train step: changing it retrains."""
    from neuroexec.plan.graph import make_plan
    from neuroexec.spec import load_spec

    pretrained = torch.load(trained / "imagenet.pth", weights_only=True)
    state, _, _ = load_model_state(MapsLayout(trained / "maps/rn18").best_model(0, "loss"))
    for ours, theirs in (("convolutions.0.weight", "conv1.weight"), ("fc.1.weight", "fc.weight")):
        moved = (state[ours] - pretrained[theirs]).abs().max()
        assert 0 < moved < 1e-2, ours  # a few Adam steps of 1e-4 from the file's values
    step = "model.rn18.train[split-0]"
    plan = {p.step.id: (p.action, p.reasons) for p in make_plan(load_spec(trained / "spec.toml")).steps}
    assert plan[step][0] == "="
    before = train_task(trained / "spec.toml", "rn18").resume_key({})
    _torchvision_file(trained / "imagenet.pth", seed=4)
    assert train_task(trained / "spec.toml", "rn18").resume_key({}) != before  # no resuming across files
    plan = {p.step.id: (p.action, p.reasons) for p in make_plan(load_spec(trained / "spec.toml")).steps}
    # outside the MAPS, the plan names the file by its path, or by its name alone when the path is long
    shown = str(trained / "imagenet.pth") if len(str(trained / "imagenet.pth")) <= 60 else "imagenet.pth"
    assert plan[step][0] == "~" and plan[step][1][0] == f"input {shown} changed"
    assert plan["model.stride.train[split-0]"][0] == "="


def test_a_clinicadl_maps_of_an_out_of_scope_architecture_is_refused_when_predicted(trained, tmp_path):
    import shutil

    maps = tmp_path / "ssda"
    shutil.copytree(trained / "maps" / "stride", maps)
    parameters = json.loads((maps / "maps.json").read_text())
    (maps / "maps.json").write_text(json.dumps(parameters | {"architecture": "Conv5_FC3_SSDA"}))
    with pytest.raises(InputError, match=r"maps\.json: architecture Conv5_FC3_SSDA: .*domain adaptation"):
        load_model(maps, 0, "loss")


VALIDATED = """version = 1
[datasets.d]
caps = "data/d"
generate = { subjects = 8, resolution_mm = 8 }
[models.m]
maps = "maps/m"
dataset = "d"
"""


def _problems(tmp_path: Path, model: str) -> list[tuple[str, str]]:
    from neuroexec.errors import SpecError
    from neuroexec.spec import load_spec

    (tmp_path / "spec.toml").write_text(VALIDATED + model)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "spec.toml")
    return [(p.key, p.message) for p in err.value.problems]


@pytest.mark.parametrize("name, says", [("Conv5_FC3_SSDA", "semi-supervised domain adaptation"),
                                        ("RandomArchitecture", "random-search architecture")])  # fmt: skip
def test_validate_refuses_an_out_of_scope_architecture_with_the_reason(tmp_path, name, says):
    ((key, message),) = _problems(tmp_path, f'architecture = "{name}"')
    assert key == "models.m.architecture" and says in message and "not supported by neuroexec" in message


def test_validate_refuses_a_weights_file_the_network_does_not_read_or_that_is_missing(tmp_path):
    torch.save({}, tmp_path / "w.pth")
    ((key, message),) = _problems(
        tmp_path, 'architecture = "Conv5_FC3"\narchitecture_options = { weights = "w.pth" }'
    )
    assert key == "models.m.architecture_options.weights"
    assert message.startswith("Conv5_FC3 reads no pretrained-weights file")
    resnet = 'architecture = "resnet18"\nmode = "slice"\narchitecture_options = { weights = "absent.pth" }'
    ((key, message),) = _problems(tmp_path, resnet)
    assert key == "models.m.architecture_options.weights"
    assert message.startswith(f"pretrained-weights file not found: {tmp_path / 'absent.pth'}")


def test_plan_refuses_a_residual_network_too_big_for_the_images(tmp_path):
    from neuroexec.plan.graph import REFUSED, make_plan
    from neuroexec.spec import load_spec

    (tmp_path / "spec.toml").write_text(
        VALIDATED + 'architecture = "ResNet3D"\nsplit = { n_splits = 2, splits = [0] }'
    )
    refused = {p.step.id: " ".join(p.reasons) for p in make_plan(load_spec(tmp_path / "spec.toml")).steps
               if p.action == REFUSED}  # fmt: skip
    assert list(refused) == ["model.m.train[split-0]"]
    assert (
        "ResNet3D pools 5 times by 3 with stride 2 and needs every spatial size >= 63"
        in refused["model.m.train[split-0]"]
    )

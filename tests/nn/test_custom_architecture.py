"""A network of your own: `architecture = "module:Class"` (found on sys.path or next to the spec) or a
package entry point of group `neuroexec.architectures`; checked at validate, built and run for the
planned inputs at plan time, fingerprinted by its source, predicted from its MAPS where it imports."""

from __future__ import annotations

import itertools
import shutil
import sys
from pathlib import Path

import pytest
import torch

from neuroexec.cli import main
from neuroexec.errors import InputError, NeuroexecError, SpecError
from neuroexec.inference.model_io import load_model
from neuroexec.nn import custom
from neuroexec.nn.registry import build_architecture
from neuroexec.plan.graph import CHANGED, REFUSED, make_plan
from neuroexec.spec import load_spec
from neuroexec.training.task import training_config

NET = '''
import torch
from torch import nn


class MyNet(nn.Module):
    """A tiny network of my own."""

    def __init__(self, input_size, output_size, dropout=0.0, n_conv=4):
        super().__init__()
        self.conv = nn.Conv3d(input_size[0], 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4, {outputs})
        self.n_conv = n_conv

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean(dim=(2, 3, 4))
        return self.fc(self.drop(x))
'''

_names = itertools.count()


def write_net(folder: Path, outputs: str = "output_size", body: str = NET) -> str:
    """A module of its own name (modules stay in sys.modules) holding MyNet; its import path."""
    module = f"my_nets_{next(_names)}_{folder.name.replace('-', '_')}"
    (folder / f"{module}.py").write_text(body.format(outputs=outputs))
    return f"{module}:MyNet"


def spec_text(architecture: str, extra: str = "") -> str:
    return f"""version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.d]
caps = "data/d"
generate = {{ subjects = 8, resolution_mm = 8 }}
[models.m]
maps = "maps/m"
dataset = "d"
architecture = "{architecture}"
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1, learning_rate = 1e-3 }}
{extra}"""


def write_spec(folder: Path, architecture: str, extra: str = "") -> Path:
    path = folder / "spec.toml"
    path.write_text(spec_text(architecture, extra))
    return path


@pytest.fixture
def forget_modules():
    """The test's modules out of sys.modules afterwards (each test writes its own)."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("my_nets_", "fake_arch_")):
            del sys.modules[name]


def test_a_net_next_to_the_spec_trains_predicts_and_retrains_when_edited(tmp_path, forget_modules):
    name = write_net(tmp_path)
    groups = '[groups.validation]\nfrom_training = "validation"\nmodels = ["m"]\n'
    spec = write_spec(tmp_path, name, groups)
    assert main(["apply", str(spec), "--quiet"]) == 0
    maps = tmp_path / "maps" / "m"
    assert (maps / "split-0" / "best-loss" / "validation" / "validation_image_level_prediction.tsv").is_file()
    model, info = load_model(maps, 0, "loss")
    assert info.architecture == name and model.architecture_name == name
    assert type(model).__name__ == "MyNet"

    module = tmp_path / f"{name.split(':')[0]}.py"
    module.write_text(module.read_text().replace("mean(dim=(2, 3, 4))", "amax(dim=(2, 3, 4))"))
    plan = make_plan(load_spec(spec))
    train = next(p for p in plan.steps if p.step.kind == "train")
    assert train.action == CHANGED

    del sys.modules[name.split(":")[0]]  # another process, where the module is not importable
    with pytest.raises(InputError, match=rf"maps.json.*no module named {name.split(':')[0]}.*PYTHONPATH"):
        load_model(maps, 0, "loss")
    elsewhere = tmp_path / "elsewhere"  # a spec using the MAPS as a pretrained model
    elsewhere.mkdir()
    (elsewhere / "spec.toml").write_text(f'version = 1\n[models.old]\nmaps = "{maps}"\n')
    with pytest.raises(SpecError) as err:
        load_spec(elsewhere / "spec.toml")
    (problem,) = err.value.problems
    assert problem.key == "models.old.maps" and "network cannot be built" in problem.message
    shutil.copy(module, elsewhere / module.name)
    load_spec(elsewhere / "spec.toml")  # the module next to that spec: found
    assert type(load_model(maps, 0, "loss")[0]).__name__ == "MyNet"


def test_the_fingerprint_holds_the_source_of_a_custom_net_only(tmp_path, forget_modules):
    name = write_net(tmp_path)
    custom_config = training_config(load_spec(write_spec(tmp_path, name)).models["m"])
    module = tmp_path / f"{name.split(':')[0]}.py"
    module.write_text(module.read_text() + "\n# a comment is an edit too\n")
    edited = training_config(load_spec(write_spec(tmp_path, name)).models["m"])
    assert custom_config["architecture_source"] != edited["architecture_source"]
    assert {k: v for k, v in custom_config.items() if k != "architecture_source"} == {
        k: v for k, v in edited.items() if k != "architecture_source"
    }
    builtin = training_config(load_spec(write_spec(tmp_path, "TinyCNN")).models["m"])
    assert "architecture_source" not in builtin


def test_options_reach_the_class_only_when_it_names_them(tmp_path, forget_modules, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = write_net(tmp_path)
    options = {"n_conv": 7, "latent_space_size": 3}  # MyNet names n_conv, not latent_space_size
    net = build_architecture(name, "classification", (1, 8, 9, 8), 3, 0.25, options)
    assert net.n_conv == 7 and net.drop.p == 0.25 and net.fc.out_features == 3
    assert net(torch.zeros(2, 1, 8, 9, 8)).shape == (2, 3)


def test_an_entry_point_names_a_net_of_an_installed_package(tmp_path, forget_modules, monkeypatch):
    (tmp_path / "fake_arch_nets.py").write_text(NET.format(outputs="output_size"))
    info = tmp_path / "fake_arch-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-arch\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neuroexec.architectures]\nTinyOwn = fake_arch_nets:MyNet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert custom.entry_points()["TinyOwn"] == "fake_arch_nets:MyNet"
    net = build_architecture("TinyOwn", "regression", (1, 8, 9, 8), 1)
    assert net.architecture_name == "TinyOwn" and net.fc.out_features == 1
    spec = load_spec(write_spec(tmp_path, "TinyOwn", 'task = "regression"\nlabel = "age"\n'))
    assert "architecture_source" in training_config(spec.models["m"])


@pytest.mark.parametrize(
    "body, said",
    [
        (None, "no module named my_nets_missing (looked on sys.path and in"),
        ("1 / 0\n", "importing module {module} failed: ZeroDivisionError"),
        ("import not_a_package_anywhere\n", "imports not_a_package_anywhere, which is not installed"),
        ("class Other:\n    pass\n", "has no 'MyNet'"),
        ("class MyNet:\n    pass\n", "MyNet is not a torch.nn.Module class"),
        ("from torch import nn\nclass MyNet(nn.Module):\n    def __init__(self, size):\n        super().__init__()\n",
         "MyNet.__init__ takes no input_size, output_size, dropout"),
    ],
)  # fmt: skip
def test_validate_says_why_a_net_of_your_own_cannot_be_used(tmp_path, forget_modules, body, said):
    module = "my_nets_missing" if body is None else f"my_nets_bad_{next(_names)}"
    if body is not None:
        (tmp_path / f"{module}.py").write_text(body)
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, f"{module}:MyNet"))
    (problem,) = err.value.problems
    assert problem.key == "models.m.architecture"
    assert said.format(module=module) in problem.message


def test_validate_exit_2_names_the_key(tmp_path, forget_modules, capsys):
    spec = write_spec(tmp_path, "my_nets_nowhere:MyNet")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "models.m.architecture" in err and "no module named my_nets_nowhere" in err


def test_the_plan_refuses_a_net_whose_output_does_not_fit_the_task(tmp_path, forget_modules):
    name = write_net(tmp_path, outputs="3")  # 3 outputs whatever the task; the data has AD and CN
    plan = make_plan(load_spec(write_spec(tmp_path, name)))
    (refused,) = [p for p in plan.steps if p.action == REFUSED]
    assert refused.step.kind == "train"
    assert "models.m.architecture" in refused.reasons[0] and "needs outputs of (2, 2)" in refused.reasons[0]
    regression = make_plan(load_spec(write_spec(tmp_path, name, 'task = "regression"\nlabel = "age"\n')))
    assert "needs outputs of (2, 1)" in next(p for p in regression.steps if p.action == REFUSED).reasons[0]


def test_the_plan_refuses_a_net_that_fails_on_the_planned_inputs(tmp_path, forget_modules):
    body = NET.replace("nn.Conv3d(input_size[0]", "nn.Conv2d(input_size[0]")  # 2D on 3D volumes
    name = write_net(tmp_path, body=body)
    plan = make_plan(load_spec(write_spec(tmp_path, name)))
    (refused,) = [p for p in plan.steps if p.action == REFUSED]
    assert refused.reasons[0].startswith(
        f"models.m.architecture: {name} cannot take inputs of 1 x 21 x 26 x 22"
    )
    assert main(["apply", str(write_spec(tmp_path, name)), "--quiet"]) == 2
    assert not (tmp_path / "data").exists()  # nothing ran: not even the generate step


def test_a_custom_net_builder_error_is_a_neuroexec_error(tmp_path, forget_modules, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = write_net(tmp_path, outputs="output_size")
    with pytest.raises(NeuroexecError, match=r"MyNet\(input_size=\(1, 8, 9, 8\), output_size=None"):
        build_architecture(name, "reconstruction", (1, 8, 9, 8), None)  # nn.Linear(4, None) fails

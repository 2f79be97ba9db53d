"""`neuroexec train list_models [-a NAME] [-i SIZE] [-m]` as ClinicaDL's, and the schema's
`architecture` description naming every registry architecture (so the two cannot drift)."""

from __future__ import annotations

import re
import sys

import pytest

from neuroexec.cli import main
from neuroexec.nn import registry
from neuroexec.spec.load import schema


def listed(capsys, *argv: str) -> str:
    assert main(["train", "list_models", *argv]) == 0
    return capsys.readouterr().out


def test_list_models_lists_every_registry_architecture(capsys):
    out = listed(capsys)
    assert out.startswith("The list of currently available models is:\n")
    names = [line[3:] for line in out.splitlines() if line.startswith(" - ")]
    assert names == registry.known()
    assert "--architecture" in out.splitlines()[-1]


def test_a_describes_one_with_an_input_size_it_builds_for(capsys):
    out = listed(capsys, "-a", "Conv5_FC3")
    assert "Information about 'Conv5_FC3' network:" in out
    assert registry.REGISTRY["Conv5_FC3"].description in out
    assert "2D or 3D inputs" in out and "classification or regression" in out
    assert "for example 1@169x208x179" in out


def test_m_prints_the_layers_for_the_input_size_given(capsys):
    out = listed(capsys, "-a", "Conv5_FC3", "-i", "1@32x32x32", "-m")
    assert "Input size: 1@32x32x32" in out
    assert "Conv3d(1, 8" in out and "Linear(in_features=128, out_features=1300" in out  # 128 x 1 x 1 x 1
    slices = listed(capsys, "-a", "Conv5_FC3", "-i", "3@64x64", "-m")
    assert "Conv2d(3, 8" in slices


def test_entry_points_are_listed_and_described(capsys, tmp_path, monkeypatch):
    (tmp_path / "fake_arch_listed.py").write_text(
        "from torch import nn\n\nclass Net(nn.Module):\n    '''My listed net.'''\n\n"
        "    def __init__(self, input_size, output_size, dropout=0.0):\n        super().__init__()\n"
        "        self.fc = nn.Linear(input_size[0], output_size or 1)\n"
    )
    info = tmp_path / "fake_listed-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-listed\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neuroexec.architectures]\nListedNet = fake_arch_listed:Net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert " - ListedNet (entry point: fake_arch_listed:Net)" in listed(capsys)
    out = listed(capsys, "-a", "ListedNet", "-m")
    assert "My listed net." in out and "Linear(in_features=1" in out


@pytest.mark.parametrize(
    "argv, said",
    [
        (["-a", "Conv5FC3"], "[--architecture]: unknown architecture 'Conv5FC3' (did you mean Conv5_FC3?)"),
        (["-a", "Conv5_FC3", "-i", "169x208x179", "-m"], "[--input_size]: expected C@DxHxW or C@HxW"),
        (["-a", "Conv5_FC3", "-i", "1@8x8x8", "-m"], "[--input_size]: Conv5_FC3 does not build for input size 1@8x8x8"),
    ],
)  # fmt: skip
def test_a_wrong_name_or_size_is_exit_2_naming_the_flag(capsys, argv, said):
    assert main(["train", "list_models", *argv]) == 2
    assert said in capsys.readouterr().err


def test_the_schema_names_every_registry_architecture():
    text = schema()["properties"]["models"]["additionalProperties"]["properties"]["architecture"][
        "description"
    ]
    missing = [name for name in registry.known() if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)]
    assert not missing, f"spec/schema.json's architecture description does not name {missing}"


def test_a_describes_a_network_of_your_own_in_this_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_nets_here.py").write_text(
        "from torch import nn\n\nclass Net(nn.Module):\n    '''A net in this folder.'''\n\n"
        "    def __init__(self, input_size, output_size, dropout=0.0):\n        super().__init__()\n"
        "        self.fc = nn.Linear(input_size[0], output_size or 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    out = listed(capsys, "-a", "my_nets_here:Net", "-i", "1@8x8x8", "-m")
    assert "A net in this folder." in out and "Input size: 1@8x8x8" in out and "Linear(in_features=1" in out
    sys.modules.pop("my_nets_here", None)

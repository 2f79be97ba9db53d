"""ClinicaDL 1.6.1's CNNs against ours: same state-dict names and shapes, the same initial weights from
the same seed, and with ClinicaDL's weights loaded (weights_only) the same outputs in eval mode; and a
MAPS ClinicaDL trained with Stride_Conv5_FC3 or resnet18 predicts here as ClinicaDL predicted it.

ClinicaDL runs in its own venv (the python beside NEUROEXEC_CLINICADL); it saves its networks' states,
an input and its outputs, which this side loads with weights_only=True. Its resnet18 would download
ImageNet's weights: the script gives it a torchvision resnet18 state dict instead, saved to a file that
our resnet18 reads as architecture_options.weights. Skipped unless NEUROEXEC_CLINICADL is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.nn.registry import build_architecture
from tests.compat.test_with_clinicadl import _clinicadl_split
from tests.compat.test_with_clinicadl_modes import DATA, _apply, _same_predictions, _tables

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)

# case -> (ClinicaDL class, input size). ClinicaDL's ResNet3D and SqueezeExcitationCNN are designed for
# 1 x 169 x 208 x 179 whatever the input size, so they are compared there.
CASES = {
    "Stride_Conv5_FC3-3d": ("Stride_Conv5_FC3", [1, 33, 35, 31]),
    "Stride_Conv5_FC3-2d": ("Stride_Conv5_FC3", [3, 37, 30]),
    "ResNet3D": ("ResNet3D", [1, 169, 208, 179]),
    "SqueezeExcitationCNN": ("SqueezeExcitationCNN", [1, 169, 208, 179]),
    "resnet18": ("resnet18", [3, 64, 70]),
}

SCRIPT = r"""
import sys
import torch
import torchvision
from clinicadl.utils.network.cnn import models

cases, out = eval(sys.argv[1]), sys.argv[2]
torch.manual_seed(123)
imagenet = torchvision.models.resnet18().state_dict()  # stands for the ImageNet download
torch.save(imagenet, f"{out}/imagenet.pth")
models.model_zoo.load_url = lambda url: imagenet
for case, (name, size) in cases.items():
    torch.manual_seed(0)
    net = getattr(models, name)(input_size=size, gpu=False, output_size=2, dropout=0.3)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # weights and batch-norm statistics away from their initial values
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                noise = torch.randn(value.shape, generator=generator)
                value.copy_(noise.abs() + 0.5 if "running_var" in key else value + 0.1 * noise)
    net.eval()
    x = torch.randn(2, *size, generator=generator)
    with torch.no_grad():
        y = net(x)
    torch.save({"initial": initial, "state": net.state_dict(), "input": x, "output": y}, f"{out}/{case}.pt")
"""


@pytest.fixture(scope="module")
def clinicadl_nets(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clinicadl_nets")
    python = Path(CLINICADL).parent / "python"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [str(python), "-c", SCRIPT, repr(CASES), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _ours(case: str, weights: Path) -> torch.nn.Module:
    name, size = CASES[case]
    options = {"weights": weights} if name == "resnet18" else {}
    torch.manual_seed(0)
    return build_architecture(name, "classification", tuple(size), 2, 0.3, options)


@pytest.mark.parametrize("case", list(CASES))
def test_same_state_dict_names_shapes_and_initial_weights_as_clinicadl(clinicadl_nets, case):
    theirs = torch.load(clinicadl_nets / f"{case}.pt", weights_only=True)["initial"]
    ours = _ours(case, clinicadl_nets / "imagenet.pth").state_dict()
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    # one seed, the same weights: the layers are made (and their weights drawn) in ClinicaDL's order.
    # Not the batch-norm statistics: ClinicaDL sizes its layers by a forward pass in training mode,
    # which moves them once; ours are computed.
    weights = [k for k, _ in _ours(case, clinicadl_nets / "imagenet.pth").named_parameters()]
    assert [k for k in weights if not torch.equal(ours[k], theirs[k])] == []


@pytest.mark.parametrize("case", list(CASES))
def test_clinicadl_weights_give_the_same_outputs(clinicadl_nets, case):
    saved = torch.load(clinicadl_nets / f"{case}.pt", weights_only=True)
    net = _ours(case, clinicadl_nets / "imagenet.pth")
    net.load_state_dict(saved["state"])
    net.eval()
    with torch.no_grad():
        y = net(saved["input"])
    assert y.shape == saved["output"].shape
    torch.testing.assert_close(y, saved["output"], rtol=1e-5, atol=1e-5)


# ClinicaDL-trained: architecture -> (prepare-data arguments, mode, parts per image)
TRAINED = {
    "Stride_Conv5_FC3": (["image"], "image", 1),
    "resnet18": (["slice", "--slice_direction", "0", "--slice_mode", "rgb", "--discarded_slices", "19",
                  "--discarded_slices", "20"], "slice", 3),  # sagittal slices 19, 20, 21 of 42
}  # fmt: skip


def _caps(root: Path) -> None:
    """demo (12 subjects) and other (6) at 4 mm (42 x 52 x 44): ClinicaDL builds these networks with one
    image, so a side must be over 32 voxels."""
    for name, subjects, seed, offset in (("demo", 12, 1, 0), ("other", 6, 2, 500)):
        generate_atrophy_dataset(root / "data" / name, subjects=subjects, resolution_mm=4.0, seed=seed,
                                 subject_offset=offset)  # fmt: skip


def _clinicadl(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run([CLINICADL, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize("name", list(TRAINED))
def test_neuroexec_predicts_a_clinicadl_maps_of_the_architecture_as_clinicadl_did(
    tmp_path, clinicadl_nets, name
):
    """ClinicaDL trains the architecture for one epoch (resnet18 from the stand-in ImageNet file, found in
    torch's download cache); neuroexec's predictions on its validation group (ClinicaDL's tensors, its
    checkpoint read with weights_only) equal those ClinicaDL wrote when training."""
    prepare_args, mode, parts = TRAINED[name]
    cache = tmp_path / "torch/hub/checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(clinicadl_nets / "imagenet.pth", cache / "resnet18-5c106cde.pth")
    env = {
        **os.environ,
        "TORCH_HOME": str(tmp_path / "torch"),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    _caps(tmp_path)
    _clinicadl(["prepare-data", *prepare_args[:1], "data/demo", "t1-linear", *prepare_args[1:], "-ej",
                "extract.json", "-np", "1"], tmp_path, env)  # fmt: skip
    split = _clinicadl_split(tmp_path / "data/demo/participants.tsv", tmp_path / "split")
    _clinicadl(["train", "classification", "data/demo", "extract.json", str(split), "maps_cdl", "--architecture",
                name, "--epochs", "1", "--batch_size", "4", "--no-gpu", "--n_proc", "0", "--split", "0"],
               tmp_path, env)  # fmt: skip
    result = tmp_path / "maps_cdl/split-0/best-loss/validation"
    theirs = _tables(result, "validation", mode)
    for table in result.glob("validation_*.tsv"):
        table.unlink()  # neuroexec writes them again
    group = '[groups.validation]\nfrom_training = "validation"\nmodels = ["cdl"]\n'
    _apply(tmp_path / "spec.toml", DATA + '[models.cdl]\nmaps = "maps_cdl"\n' + group)
    ours = _tables(result, "validation", mode)
    rows = len(pd.read_csv(split / "validation_baseline.tsv", sep="\t"))
    keys = ["participant_id", "session_id"]
    if mode != "image":
        _same_predictions(theirs[f"{mode}_prediction"], ours[f"{mode}_prediction"], [*keys, f"{mode}_id"],
                          rows * parts)  # fmt: skip
    _same_predictions(theirs["image_prediction"], ours["image_prediction"], keys, rows)

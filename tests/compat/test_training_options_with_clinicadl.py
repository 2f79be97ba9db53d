"""ClinicaDL 1.6.1's training options (NEUROEXEC_CLINICADL=/path/to/clinicadl, its venv's python beside
it) and neuroexec's agree: each task's losses (its task managers' get_criterion, applied as its networks
apply them) give the same values on the same tensors, a loss it refuses for a task is refused here, and
its weighted sampler gives the same item weights and draws as many items."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from neuroexec import losses
from neuroexec.training.sampling import class_weights

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)

NAMES = ["CrossEntropyLoss", "MultiMarginLoss", "L1Loss", "MSELoss", "KLDivLoss", "BCEWithLogitsLoss",
         "HuberLoss", "SmoothL1Loss"]  # fmt: skip
LABELS = ["CN", "AD", "CN", "CN", "MCI", "AD", "CN"]

SCRIPT = """
import sys, warnings
import numpy as np, pandas as pd, torch
warnings.filterwarnings("ignore")
from clinicadl.utils.task_manager.classification import ClassificationManager
from clinicadl.utils.task_manager.regression import RegressionManager
from clinicadl.utils.task_manager.reconstruction import ReconstructionManager
inputs = torch.load(sys.argv[1])
managers = {"classification": ClassificationManager, "regression": RegressionManager,
            "reconstruction": ReconstructionManager}
out = {"values": {}, "refused": []}
for task, manager in managers.items():
    for name in inputs["names"]:
        try:
            criterion = manager.get_criterion(name)
        except Exception:
            out["refused"].append((task, name))
            continue
        if task == "classification":
            value = criterion(inputs["logits"], inputs["classes"])
        elif task == "regression":  # its labels are np.float32([target]): [B, 1]
            value = criterion(inputs["values"], inputs["targets"].reshape(-1, 1))
        else:
            value = criterion(inputs["recon"], inputs["images"])
        out["values"][f"{task} {name}"] = value.float()
class Data: pass
data = Data()
data.df = pd.DataFrame({"diagnosis": inputs["labels"]})
data.label, data.elem_per_image = "diagnosis", 2
data.label_code = {k: i for i, k in enumerate(sorted(set(inputs["labels"])))}
data.label_fn = lambda target: data.label_code[str(target)]
sampler = ClassificationManager.generate_sampler(data, "weighted")
out["weights"] = torch.as_tensor(sampler.weights, dtype=torch.float64)
out["num_samples"] = sampler.num_samples
torch.save(out, sys.argv[2])
"""


@pytest.fixture(scope="module")
def theirs(tmp_path_factory) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    inputs = {
        "names": NAMES,
        "logits": torch.randn(6, 3, generator=g),
        "classes": torch.tensor([0, 2, 1, 1, 0, 2]),
        "values": torch.randn(6, 1, generator=g) * 3,
        "targets": torch.rand(6, generator=g),
        "images": torch.rand(6, 1, 4, 3, 5, generator=g),
        "recon": torch.randn(6, 1, 4, 3, 5, generator=g),
        "labels": LABELS,
    }
    folder = tmp_path_factory.mktemp("clinicadl_training")
    torch.save(inputs, folder / "inputs.pt")
    python = Path(CLINICADL).parent / "python"
    done = subprocess.run(
        [str(python), "-c", SCRIPT, str(folder / "inputs.pt"), str(folder / "out.pt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return inputs, torch.load(folder / "out.pt", weights_only=True)


@pytest.mark.parametrize("task", ["classification", "regression", "reconstruction"])
def test_the_losses_of_each_task_are_clinicadls(theirs, task):
    inputs, out = theirs
    refused = {name for t, name in out["refused"] if t == task}
    assert refused == {name for name in NAMES if losses.refusal(task, name)}
    for name in sorted(set(NAMES) - refused):
        if task == "classification":
            args = (inputs["logits"], inputs["classes"], inputs["logits"])
        elif task == "regression":
            args = (inputs["values"], inputs["targets"], inputs["images"])
        else:
            args = (inputs["recon"], torch.zeros(6), inputs["images"])
        expected = out["values"][f"{task} {name}"]
        torch.testing.assert_close(losses.batch_loss(task, name, *args), expected, msg=name)
        torch.testing.assert_close(losses.item_losses(task, name, *args).mean(), expected, msg=name)


def test_the_weighted_sampler_weighs_as_clinicadls(theirs):
    _inputs, out = theirs
    code = {k: i for i, k in enumerate(sorted(set(LABELS)))}
    ours = class_weights([code[label] for label in LABELS], parts_per_image=2)
    torch.testing.assert_close(ours, out["weights"])
    assert out["num_samples"] == len(ours)

"""ClinicaDL 1.6.1's augmentation and size-reduction classes against ours, where the randomness can be
aligned: ClinicaDL draws its parameters from Python's `random` and numpy's global RNG, which its
script seeds and replays to give us the same parameters; the draws from torch's RNG (Noise's noise,
torchvision's RandomErasing) come from the same torch seed on both sides. SizeReduction has no
randomness. ClinicaDL runs in its own venv (the python beside NEUROEXEC_CLINICADL) and saves what its
classes return, which this side loads with weights_only=True. Skipped unless NEUROEXEC_CLINICADL is set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from neuroexec.data.augmentation import add_noise, crop_pad, gaussian_smooth, random_erasing
from neuroexec.data.size_reduction import reduce_size

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)

SCRIPT = r"""
import random, sys
import numpy as np
import torch
from torchvision import transforms
from clinicadl.utils.caps_dataset import data

out = sys.argv[1]
volume = torch.load(f"{out}/volume.pt")
image = torch.load(f"{out}/image.pt")
results = {}
for seed in range(4):
    random.seed(seed)
    torch.manual_seed(100 + seed)
    results[f"noise-{seed}"] = data.RandomNoising(sigma=0.1)(volume)
    random.seed(seed)
    results[f"smoothing-{seed}"] = data.RandomSmoothing()(volume)
    np.random.seed(seed)
    results[f"croppad-{seed}"] = data.RandomCropPad(10)(volume)
    torch.manual_seed(200 + seed)
    results[f"erasing-{seed}"] = transforms.RandomErasing()(volume)
for factor in (2, 3, 4, 5):
    results[f"reduction-{factor}"] = data.SizeReduction(factor)(image)
torch.save(results, f"{out}/results.pt")
"""


@pytest.fixture(scope="module")
def clinicadl(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("clinicadl-augmentation")
    torch.manual_seed(0)
    torch.save(torch.rand(1, 23, 27, 21), out / "volume.pt")
    torch.save(torch.rand(1, 169, 208, 179), out / "image.pt")
    python = Path(CLINICADL).with_name("python")
    subprocess.run([str(python), "-c", SCRIPT, str(out)], check=True, capture_output=True)
    results = torch.load(out / "results.pt", weights_only=True)
    results["volume"] = torch.load(out / "volume.pt", weights_only=True)
    results["image"] = torch.load(out / "image.pt", weights_only=True)
    return results


@pytest.mark.parametrize("seed", range(4))
def test_noise_smoothing_croppad_and_erasing_as_clinicadls(clinicadl, seed):
    import random

    import numpy as np

    volume = clinicadl["volume"]
    random.seed(seed)
    sigma = random.uniform(0, 0.1)  # what RandomNoising drew
    torch.manual_seed(100 + seed)
    assert torch.equal(add_noise(volume, sigma), clinicadl[f"noise-{seed}"])
    random.seed(seed)
    assert torch.equal(gaussian_smooth(volume, random.uniform(0, 1)), clinicadl[f"smoothing-{seed}"])
    np.random.seed(seed)
    assert torch.equal(crop_pad(volume, np.random.randint(-10, 10, 3).tolist()), clinicadl[f"croppad-{seed}"])
    torch.manual_seed(200 + seed)
    assert torch.equal(random_erasing(volume), clinicadl[f"erasing-{seed}"])


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
def test_size_reduction_as_clinicadls(clinicadl, factor):
    assert torch.equal(reduce_size(clinicadl["image"], factor), clinicadl[f"reduction-{factor}"])


def test_the_seeds_erase_some_volumes_and_leave_others(clinicadl):
    erased = [not torch.equal(clinicadl[f"erasing-{seed}"], clinicadl["volume"]) for seed in range(4)]
    assert any(erased) and not all(erased)  # RandomErasing's p = 0.5 both ways

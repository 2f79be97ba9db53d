"""models.<m>.size_reduction_factor (neuroexec/data/size_reduction.py): ClinicaDL's fixed boxes and
steps of t1-linear images, the same in training, predict, save-tensors and interpret; maps.json's
size_reduction keys written and read back; refused at plan time where ClinicaDL's boxes do not apply."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroexec.data.datasets import ImageDataset
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.mode_datasets import mode_dataset
from neuroexec.data.participants import load_participants
from neuroexec.data.size_reduction import reduce_size, reduce_volume, reduced_affine, reduced_shape
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec import load_spec
from neuroexec.training.task import training_config
from tests.training.training_specs import run_apply, write_spec

# ClinicaDL 1.6.1's SizeReduction: factor -> the slices it takes of [C, X, Y, Z]
CLINICADL = {
    2: (slice(4, 164, 2), slice(8, 200, 2), slice(8, 168, 2)),
    3: (slice(0, 168, 3), slice(8, 200, 3), slice(4, 172, 3)),
    4: (slice(4, 164, 4), slice(8, 200, 4), slice(8, 168, 4)),
    5: (slice(4, 164, 5), slice(0, 200, 5), slice(8, 168, 5)),
}
SIZES = {2: (80, 96, 80), 3: (56, 64, 56), 4: (40, 48, 40), 5: (32, 40, 32)}


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(169, 208, 179), (193, 229, 193)])
def test_the_reduced_image_is_clinicadls(factor, shape):
    image = torch.rand(1, *shape)
    reduced = reduce_size(image, factor)
    assert tuple(reduced.shape[1:]) == SIZES[factor] == reduced_shape(factor)
    assert torch.equal(reduced, image[(slice(None), *CLINICADL[factor])])
    assert reduced.is_contiguous()
    mask = image[0].numpy() > 0.5
    assert np.array_equal(reduce_volume(mask, factor), mask[CLINICADL[factor]])


def test_an_image_smaller_than_the_box_is_refused_naming_the_key():
    with pytest.raises(InputError, match="at least 164 x 200 x 168") as err:
        reduce_size(torch.zeros(1, 21, 26, 22), 2)
    assert err.value.field == "size_reduction_factor"


def test_the_reduced_affine_puts_each_voxel_where_it_was_taken():
    affine = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
    moved = reduced_affine(affine, 3)
    for i, j, k in [(0, 0, 0), (5, 7, 2)]:
        source = np.array([0 + 3 * i, 8 + 3 * j, 4 + 3 * k, 1])
        assert np.allclose(moved @ [i, j, k, 1], affine @ source)


def test_the_dataset_normalises_the_whole_image_before_the_cut(tmp_path):
    data = generate_atrophy_dataset(tmp_path / "d", subjects=2, resolution_mm=8.0)
    frame = load_participants(data.participants_tsv)
    run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=False)
    plain = ImageDataset(frame, data.caps_dir, normalize=True)
    path = plain.paths[0]
    big = F.interpolate(torch.load(path)[None].float() * 7 + 3, size=(169, 208, 179))[0]
    torch.save(big, path)  # an image ClinicaDL's box fits, not normalised
    reduced = mode_dataset(
        ExtractionMode.IMAGE, frame, data.caps_dir, normalize=True, size_reduction=4, cache=True
    )
    whole = (big - big.min()) / (big.max() - big.min())
    assert torch.equal(reduced[0]["image"], reduce_size(whole, 4))
    assert reduced.input_size == [1, 40, 48, 40]


# --- plan, training and inference ------------------------------------------------------------------
def model(extra: str = "size_reduction_factor = 5", mode: str = "") -> str:
    return (
        f'task = "classification"\n{mode}{extra}\n'
        'train = { epochs = 1, learning_rate = 1e-3, selection_metrics = ["loss"] }'
    )


def test_the_plan_refuses_images_the_box_does_not_fit_and_parts(tmp_path):
    path = write_spec(tmp_path, {"small": model()}, subjects=4)
    with pytest.raises(NeuroexecError, match=r"models\.small\.size_reduction_factor: .*21 x 26 x 22"):
        run_apply(path)
    path = write_spec(tmp_path, {"patches": model(mode='mode = "patch"\npatch = { size = 8, stride = 8 }\n')})
    with pytest.raises(NeuroexecError, match=r"models\.patches\.size_reduction_factor: .*not patchs"):
        run_apply(path)


def big_caps(tmp_path: Path, subjects: int = 4) -> Path:
    """A tiny synthetic CAPS whose NIfTIs are padded to t1-linear's 169 x 208 x 179 (a 1 mm grid would
    take half a minute to generate, a dense one to compress); the spec reads it as a plain CAPS."""
    data = generate_atrophy_dataset(tmp_path / "data" / "big", subjects=subjects, resolution_mm=8.0)
    for nifti in sorted(data.caps_dir.rglob("*_T1w.nii.gz")):
        small = np.asarray(nib.load(str(nifti)).get_fdata(), dtype=np.float32)
        big = np.zeros((169, 208, 179), dtype=np.float32)
        big[74 : 74 + small.shape[0], 91 : 91 + small.shape[1], 78 : 78 + small.shape[2]] = small
        nib.save(nib.Nifti1Image(big, np.eye(4)), str(nifti))
    return data.participants_tsv


SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
seed = 0
deterministic = true
[datasets.big]
caps = "data/big"
participants = "{participants}"
[models.reduced]
maps = "maps/reduced"
dataset = "big"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
{body}
[groups.again]
dataset = "big"
models = ["reduced"]
selection_metrics = ["loss"]
skip_leak_check = true
save_tensors = {{ nifti = true }}
interpret = [{{ name = "grad", method = "gradients", figure = false }}]
"""


@pytest.mark.slow
def test_a_reduced_model_trains_predicts_saves_tensors_and_interprets_in_the_reduced_grid(tmp_path):
    participants = big_caps(tmp_path)
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(participants=participants, body=model()))
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps" / "reduced")
    raw = json.loads(maps.maps_json.read_text())
    assert raw["input_size"] == [1, 32, 40, 32]
    assert raw["size_reduction"] is True and raw["size_reduction_factor"] == 5
    assert raw["data_augmentation"] is False
    info = read_maps_info(maps.root)
    assert info.size_reduction_factor == 5 and info.data_augmentation == ()
    niftis = sorted(maps.root.rglob("*_image_input.nii.gz"))
    assert niftis and nib.load(str(niftis[0])).shape == (32, 40, 32)
    assert np.allclose(nib.load(str(niftis[0])).affine, reduced_affine(np.eye(4), 5))
    saliency = sorted(maps.root.rglob("mean_image-0_map.nii.gz"))
    assert saliency and nib.load(str(saliency[0])).shape == (32, 40, 32)


def test_size_reduction_enters_the_training_fingerprint_only_when_set(tmp_path):
    path = write_spec(tmp_path, {"reduced": model(), "full": model(extra="")})
    models = load_spec(path).models
    assert "size_reduction_factor" not in training_config(models["full"])
    assert training_config(models["reduced"])["size_reduction_factor"] == 5

"""ClinicaDL 1.6.1's generate kinds (data/generate_kinds.py and the modules beside it), each on a tiny
t1-linear CAPS of 8 mm phantoms: what each does to the images, the names and records ClinicaDL writes
(data.tsv, missing_mods/, commandline.json, shepplogan's tensors and extraction record), and the same
bytes from the same seed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.data.generate_artifacts import generate_artifacts
from neuroexec.data.generate_kinds import (
    generate_hypometabolic,
    generate_random,
    generate_trivial,
    hemisphere_masks,
)
from neuroexec.data.generate_shepplogan import generate_shepplogan, phantom
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.errors import InputError
from neuroexec.preprocessings import Preprocessing
from neuroexec.spec.generate_kinds import SHEPPLOGAN_SUFFIX, output_preprocessing
from neuroexec.spec.model import Generate

PET = Preprocessing("pet-linear", "18FFDG", "cerebellumPons2")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return generate_atrophy_dataset(tmp_path_factory.mktemp("source") / "caps", subjects=4, resolution_mm=8.0)


def _files(caps: Path) -> dict[str, bytes]:
    return {str(p.relative_to(caps)): p.read_bytes() for p in sorted(caps.rglob("*")) if p.is_file()}


def _image(
    caps: Path, participant: str, session: str = "ses-M000", pre: Preprocessing | None = None
) -> nib.Nifti1Image:
    """The one image of a session, found as the dataset's preprocessing finds it."""
    return nib.load(CapsLayout(caps, pre or Preprocessing()).t1_linear_nifti(participant, session))


def _table(caps: Path, name: str = "data.tsv") -> pd.DataFrame:
    return pd.read_csv(caps / name, sep="\t")


def test_random_adds_gaussian_noise_to_the_first_image(source, tmp_path):
    g = Generate(kind="random", caps_directory=source.caps_dir, subjects=2, mean=1.0, sigma=2.0)
    generate_random(g, tmp_path / "out")
    first = _image(source.caps_dir, "sub-0000").get_fdata()
    for i in range(4):
        diff = _image(tmp_path / "out", f"sub-RAND{i}").get_fdata() - first
        assert abs(diff.mean() - 1.0) < 0.1 and abs(diff.std() - 2.0) < 0.1
    table = _table(tmp_path / "out")
    assert table.to_dict("list") == {
        "participant_id": ["sub-RAND0", "sub-RAND1", "sub-RAND2", "sub-RAND3"], "session_id": ["ses-M000"] * 4,
        "diagnosis": ["AD", "AD", "CN", "CN"], "age_bl": [60] * 4, "sex": ["F"] * 4}  # fmt: skip
    missing = _table(tmp_path / "out", "missing_mods/missing_mods_ses-M000.tsv")
    assert missing.to_dict("list") == {"participant_id": table.participant_id.tolist(), "synthetic": [1] * 4}
    settings = json.loads((tmp_path / "out" / "commandline.json").read_text())
    assert settings == {"caps_dir": str(source.caps_dir), "preprocessing": "t1-linear", "n_subjects": 2,
                        "mean": 1.0, "sigma": 2.0}  # fmt: skip
    assert _table(tmp_path / "out", "participants.tsv").equals(table)
    generate_random(g, tmp_path / "again")
    generate_random(replace(g, seed=1), tmp_path / "other")
    assert _files(tmp_path / "again") == _files(tmp_path / "out") != _files(tmp_path / "other")


def test_trivial_atrophies_one_hemisphere_per_label(source, tmp_path):
    g = Generate(kind="trivial", caps_directory=source.caps_dir, subjects=2, atrophy_percent=60.0)
    generate_trivial(g, tmp_path / "out")
    assert _table(tmp_path / "out").diagnosis.tolist() == ["AD", "CN", "AD", "CN"]
    for i in range(4):
        before = _image(source.caps_dir, f"sub-000{i // 2}").get_fdata()
        after = _image(tmp_path / "out", f"sub-TRIV{i}").get_fdata()
        masks = hemisphere_masks(before.shape, source.affine)
        hit, spared = masks[i % 2] > 0, masks[1 - i % 2] > 0
        assert hit.sum() > 50
        assert np.all(after[hit] <= before[hit] * 0.4 + 1e-4)  # at least 60% lost
        assert np.array_equal(after[~hit], before[~hit]) and np.array_equal(after[spared], before[spared])


def test_trivial_reads_mask_path_and_refuses_more_subjects_than_sessions(source, tmp_path):
    shape, affine = source.shape, source.affine
    folder = tmp_path / "masks"
    folder.mkdir()
    for n, (low, high) in enumerate(((2, 6), (10, 14)), start=1):
        box = np.zeros(shape)
        box[low:high, 8:16, 8:14] = 1
        nib.save(nib.Nifti1Image(box, affine), folder / f"mask-{n}.nii")
    generate_trivial(Generate(kind="trivial", caps_directory=source.caps_dir, subjects=1, mask_path=folder),
                     tmp_path / "out")  # fmt: skip
    before = _image(source.caps_dir, "sub-0000").get_fdata()
    changed = [_image(tmp_path / "out", f"sub-TRIV{i}").get_fdata() != before for i in (0, 1)]
    assert changed[0][2:6, 8:16, 8:14].any() and not changed[0][10:14].any()
    assert changed[1][10:14, 8:16, 8:14].any() and not changed[1][2:6].any()
    with pytest.raises(InputError, match="needs 5 baseline sessions, this CAPS has 4"):
        generate_trivial(Generate(kind="trivial", caps_directory=source.caps_dir, subjects=5), tmp_path / "x")


@pytest.fixture(scope="module")
def pet_caps(source, tmp_path_factory):
    """The source's images as pet-linear 18FFDG cerebellumPons2 images, with a participants TSV."""
    root = tmp_path_factory.mktemp("pet") / "caps"
    layout = CapsLayout(root, PET)
    for row in source.participants.itertuples():
        img = _image(source.caps_dir, row.participant_id, row.session_id)
        folder = layout.image_dir(row.participant_id, row.session_id)
        folder.mkdir(parents=True)
        nib.save(img, folder / layout.nifti_name(row.participant_id, row.session_id))
    source.participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    return root


def test_hypometabolic_multiplies_by_the_smoothed_pathology_mask(source, pet_caps, tmp_path):
    box = np.zeros(source.shape)
    box[4:12, 6:20, 6:16] = 1
    nib.save(nib.Nifti1Image(box, source.affine), tmp_path / "mask.nii")
    g = Generate(kind="hypometabolic", caps_directory=pet_caps, participants_tsv=pet_caps / "participants.tsv",
                 subjects=3, mask_path=tmp_path / "mask.nii", anomaly_degree=30.0, sigma=1.0)  # fmt: skip
    generate_hypometabolic(g, tmp_path / "out")
    written = output_preprocessing(g)
    assert written == {"preprocessing": "custom", "custom_suffix": "_pat-ad_deg-30_pet.nii.gz"}
    custom = Preprocessing("custom", custom_suffix=written["custom_suffix"])
    for participant in ("sub-0000", "sub-0001", "sub-0002"):
        after = _image(tmp_path / "out", participant, pre=custom)
        assert after.get_filename().endswith(
            f"pet-linear/{participant}_ses-M000_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_"
            "suvr-cerebellumPons2_pat-ad_deg-30_pet.nii.gz")  # fmt: skip
        ratio = after.get_fdata() / np.maximum(_image(pet_caps, participant, pre=PET).get_fdata(), 1e-6)
        assert abs(ratio[8, 13, 11] - 0.7) < 0.02 and abs(ratio[18, 2, 2] - 1.0) < 0.02
    assert _table(tmp_path / "out").columns.tolist() == [
        "participant_id",
        "session_id",
        "pathology",
        "percentage",
    ]
    participants = _table(tmp_path / "out", "participants.tsv")
    assert (
        participants.diagnosis.tolist() == source.participants.diagnosis[:3].tolist()
    )  # the source's labels


def test_shepplogan_writes_clinicadls_tensors_record_and_a_readable_image(tmp_path):
    g = Generate(kind="shepplogan", subjects=3, image_size=32, ad_subtypes_distribution=(0.0, 1.0, 0.0))
    generate_shepplogan(g, tmp_path / "out")
    table = _table(tmp_path / "out")
    assert table.columns.tolist() == ["participant_id", "session_id", "diagnosis", "subtype"]
    assert table.groupby("diagnosis").subtype.apply(set).to_dict() == {"AD": {1}, "CN": {0}}
    layout = CapsLayout(tmp_path / "out", Preprocessing("custom", custom_suffix=SHEPPLOGAN_SUFFIX))
    for participant in table.participant_id:
        tensor_file = layout.tensor_dir(participant, "ses-M000", "slice") / (
            f"{participant}_ses-M000_space-SheppLogan_axis-axi_channel-single_slice-0_phantom.pt")  # fmt: skip
        tensor = torch.load(tensor_file, weights_only=True)
        image = nib.load(layout.t1_linear_nifti(participant, "ses-M000")).get_fdata()
        assert tensor.shape == (1, 32, 32) and image.shape == (32, 32, 1)
        assert np.allclose(tensor[0].numpy(), image[:, :, 0])
    record = json.loads((tmp_path / "out" / "tensor_extraction" / "extract_shepplogan.json").read_text())
    assert {
        k: record[k] for k in ("preprocessing", "mode", "slice_direction", "slice_mode", "num_slices")
    } == {
        "preprocessing": "custom",
        "mode": "slice",
        "slice_direction": 2,
        "slice_mode": "single",
        "num_slices": 1,
    }
    assert record["file_type"]["pattern"] == f"*{SHEPPLOGAN_SUFFIX}"


def test_shepplogan_subtypes_shrink_their_regions():
    def area(subtype: int, rows: slice) -> float:
        images = [phantom(64, subtype, np.random.default_rng(i)) for i in range(20)]
        return float(np.mean([((im > 0.3) & (im < 0.7))[rows].sum() for im in images]))

    upper, lower = slice(0, 32), slice(40, 64)  # rows: the one region at 0.6 x the centre, the three at 1.5 x
    assert area(1, lower) < area(0, lower) and area(1, upper) == area(0, upper)
    assert area(2, upper) < area(0, upper) and area(2, lower) == area(0, lower)


def test_artifacts_add_torchio_noise_and_motion_under_clinicadls_names(source, tmp_path):
    g = Generate(kind="artifacts", caps_directory=source.caps_dir, noise=True, noise_std=(3.0, 3.0))
    generate_artifacts(g, tmp_path / "noise")
    custom = Preprocessing("custom", custom_suffix=output_preprocessing(g)["custom_suffix"])
    for participant in ("sub-0000", "sub-0003"):
        noisy = _image(tmp_path / "noise", participant, pre=custom)
        assert noisy.get_filename().endswith(
            f"t1-linear/{participant}_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w_art-noi.nii.gz"
        )
        diff = noisy.get_fdata() - _image(source.caps_dir, participant).get_fdata()
        assert abs(diff.std() - 3.0) < 0.2
    assert _table(tmp_path / "noise").diagnosis.unique().tolist() == ["['noise']"]
    moved = replace(g, noise=False, motion=True)
    generate_artifacts(moved, tmp_path / "motion")
    generate_artifacts(moved, tmp_path / "again")
    assert _files(tmp_path / "motion") == _files(tmp_path / "again")
    pre = Preprocessing("custom", custom_suffix="_art-mot.nii.gz")
    before = _image(source.caps_dir, "sub-0001").get_fdata()
    after = _image(tmp_path / "motion", "sub-0001", pre=pre).get_fdata()
    assert not np.allclose(after, before) and np.corrcoef(after.ravel(), before.ravel())[0, 1] > 0.8

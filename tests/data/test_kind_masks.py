"""ClinicaDL's generate kinds that read a CAPS (their images on its t1-linear grid) write the anatomy
kind's hippocampus masks as ClinicaDL's ROI masks (`masks/tpl-MNI152NLin2009cSym/..._res-1x1x1_
roi-<left|right>Hippocampus_mask.nii.gz`), so a ROI-mode model trains on them; shepplogan's 2D phantoms
have no template grid, and a ROI model on them is refused at validate, naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neuroexec.cli import main
from neuroexec.data.anatomy import region_masks
from neuroexec.data.caps import CapsLayout
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.preprocessings import Preprocessing

MASKS = (
    "masks/tpl-MNI152NLin2009cSym/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-{}Hippocampus_mask.nii.gz"
)
ROI_MODEL = (
    '[models.roi]\nmaps = "maps/roi"\ndataset = "{dataset}"\narchitecture = "TinyCNN"\nmode = "roi"\n'
    'roi = {{ list = ["leftHippocampus", "rightHippocampus"], uncropped = true{extra} }}\n'
    "split = {{ n_splits = 2, splits = [0] }}\ntrain = {{ epochs = 1 }}\n"
)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """4 mm: the regions are read uncropped (the whole grid, the mask applied): TinyCNN pools 3 times."""
    return generate_atrophy_dataset(
        tmp_path_factory.mktemp("src") / "caps", subjects=4, resolution_mm=4.0
    ).caps_dir


def _spec(tmp_path: Path, generate: str, dataset: str = "", extra: str = "") -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'version = 1\n[compute]\nworkers = 0\nbatch_size = 2\n[datasets.gen]\ncaps = "gen"\n'
        f"generate = {generate}\n{dataset}\n" + ROI_MODEL.format(dataset="gen", extra=extra)
    )
    return spec


@pytest.mark.parametrize(
    ("generate", "dataset", "extra"),
    [
        ('{{ kind = "trivial", caps_directory = "{src}", subjects = 2 }}', "", ""),
        ('{{ kind = "artifacts", caps_directory = "{src}", participants_tsv = "{src}/participants.tsv", noise = true }}',
         'preprocessing = "custom"\ncustom_suffix = "_art-noi.nii.gz"',
         ', custom_template = "MNI152NLin2009cSym", custom_mask_pattern = "res-1x1x1"'),
    ],
)  # fmt: skip
def test_a_roi_model_trains_on_a_kind_reading_a_caps(source, tmp_path, generate, dataset, extra):
    spec = _spec(tmp_path, generate.format(src=source), dataset, extra)
    assert main(["apply", str(spec), "--quiet"]) == 0
    assert (tmp_path / "maps/roi/split-0/best-loss/model.pth.tar").is_file()
    grid = nib.load(next((tmp_path / "gen" / "subjects").rglob("*.nii.gz")))
    _, *halves = region_masks(grid.shape[:3], grid.affine)  # the anatomy kind's masks on that grid
    for side, expected in zip(("left", "right"), halves):
        mask = nib.load(tmp_path / "gen" / MASKS.format(side))
        np.testing.assert_array_equal(np.asarray(mask.dataobj), expected)
        np.testing.assert_allclose(mask.affine, grid.affine)
        _at_the_hippocampus(mask, side)


def _at_the_hippocampus(mask: nib.Nifti1Image, side: str) -> None:
    """A binary mask whose voxels, in world mm through its affine, lie where the MNI152 hippocampi are
    (nilearn's atlases: about (±27, -21, -13)), checked without the function that drew it."""
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data).tolist()) == {0, 1}
    x, y, z = nib.affines.apply_affine(mask.affine, np.argwhere(data > 0)).T
    x = -x if side == "left" else x
    assert ((15 <= x) & (x <= 40)).all() and ((-45 <= y) & (y <= 0)).all() and ((-30 <= z) & (z <= 5)).all()
    assert -30 <= y.mean() <= -15 and -20 <= z.mean() <= -5


PET = Preprocessing("pet-linear", "18FFDG", "cerebellumPons2")


def _pet_copy(source: Path, to: Path) -> Path:
    """`source`'s images as pet-linear 18FFDG cerebellumPons2 images, and a pathology mask beside them."""
    layout = CapsLayout(to, PET)
    for f in sorted((source / "subjects").rglob("*_T1w.nii.gz")):
        participant, session = f.parts[-4], f.parts[-3]
        layout.image_dir(participant, session).mkdir(parents=True)
        shutil.copyfile(f, layout.image_dir(participant, session) / layout.nifti_name(participant, session))
    shutil.copyfile(source / "participants.tsv", to / "participants.tsv")
    image = nib.load(f)
    nib.save(nib.Nifti1Image(np.ones(image.shape, np.float32), image.affine), to / "mask.nii")
    return to


@pytest.mark.parametrize("kind", ["random", "hypometabolic"])
def test_the_other_kinds_reading_a_caps_write_the_hippocampi(source, tmp_path, kind):
    if kind == "random":
        generate, dataset, extra = f'{{ kind = "random", caps_directory = "{source}", subjects = 2 }}', "", ""
    else:
        pet = _pet_copy(source, tmp_path / "pet")
        generate = (
            f'{{ kind = "hypometabolic", caps_directory = "{pet}", participants_tsv = "{pet}/participants.tsv", '
            f'subjects = 2, mask_path = "{pet}/mask.nii" }}'
        )
        dataset = 'preprocessing = "custom"\ncustom_suffix = "_pat-ad_deg-30_pet.nii.gz"'
        extra = ', custom_template = "MNI152NLin2009cSym", custom_mask_pattern = "res-1x1x1"'
    spec = _spec(tmp_path, generate, dataset, extra)
    assert main(["apply", str(spec), "--target", "dataset.gen.generate", "--quiet"]) == 0
    for side in ("left", "right"):
        _at_the_hippocampus(nib.load(tmp_path / "gen" / MASKS.format(side)), side)


def test_a_roi_model_on_shepp_logan_phantoms_is_refused(tmp_path, capsys):
    spec = _spec(
        tmp_path,
        '{ kind = "shepplogan", subjects = 2, image_size = 16 }',
        'preprocessing = "custom"\ncustom_suffix = "_space-SheppLogan_phantom.nii.gz"',
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "models.roi.mode:" in err and "kind shepplogan" in err and "use mode image or slice" in err


def _uncropped_copy(source: Path, to: Path) -> Path:
    """`source` with its t1-linear images under the uncropped names (no `_desc-Crop`)."""
    for f in source.rglob("*"):
        if f.is_file() and f.name.endswith(".nii.gz") and "subjects" in f.parts:
            out = to / f.relative_to(source).with_name(f.name.replace("_desc-Crop", ""))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.read_bytes())
    (to / "participants.tsv").write_bytes((source / "participants.tsv").read_bytes())
    return to


def test_use_uncropped_image_writes_the_uncropped_names_and_the_plan_checks_them(source, tmp_path, capsys):
    src = _uncropped_copy(source, tmp_path / "src")
    generate = f'{{ kind = "trivial", caps_directory = "{src}", subjects = 2, use_uncropped_image = true }}'
    spec = _spec(tmp_path, generate, "uncropped = true")
    assert main(["apply", str(spec), "--target", "dataset.gen.generate", "--quiet"]) == 0
    uncropped = [
        tmp_path / "gen" / MASKS.format(side).replace("_desc-Crop", "") for side in ("left", "right")
    ]
    for m, side in zip(uncropped, ("left", "right")):
        _at_the_hippocampus(nib.load(m), side)
    assert not any((tmp_path / "gen" / MASKS.format(side)).exists() for side in ("left", "right"))
    capsys.readouterr()
    assert main(["plan", str(spec)]) == 0
    assert "0 refused" in capsys.readouterr().out
    left = nib.load(uncropped[0])
    nib.save(nib.Nifti1Image(np.asarray(left.dataobj) * 0.5, left.affine), uncropped[0])  # not binary
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out  # the masks in place are read, as those of a CAPS not generated
    assert f"{uncropped[0]}: the mask of ROI 'leftHippocampus' must be binary" in out

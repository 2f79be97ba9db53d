"""mode = "roi" through plan/apply: the generated CAPS's hippocampus masks give a model that trains,
predicts (roi level and image level by soft voting), saves its tensors (NIfTIs folded back at the masks'
boxes) and interprets (maps per region, folded back); workers and a resume never change it; a mask
missing, not binary, mis-shaped or changed shows in the plan before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.data.roi_extract import box_of
from neuroexec.errors import PlanRefused
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV
from tests.helpers import make_tiny_caps
from tests.training.training_specs import run_apply

ROIS = '["leftHippocampus", "rightHippocampus"]'
MASKS = "masks/tpl-MNI152NLin2009cSym"
LEFT = f"{MASKS}/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-leftHippocampus_mask.nii.gz"
RIGHT = f"{MASKS}/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-rightHippocampus_mask.nii.gz"
WHERE = (0, "loss", "test")

# 4 mm: the hippocampus halves' boxes (5 x 10 x 5 voxels) are big enough for TinyCNN's three poolings
GENERATED = """
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 8, resolution_mm = 4, seed = 1 }}
[datasets.test]
caps = "data/test"
generate = {{ subjects = 4, resolution_mm = 4, seed = 2, subject_offset = 100 }}
{models}
"""
MODEL = """
[models.{name}]
maps = "maps/{name}"
dataset = "demo"
architecture = "TinyCNN"
mode = "roi"
roi = {{ list = {rois} }}
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = {epochs}, learning_rate = 1e-3 }}
compute = {{ workers = {workers} }}
"""
GROUP = """
[groups.test]
models = ["roi"]
dataset = "test"
save_tensors = { nifti = true }
interpret = [{ name = "grad" }]
"""


def generated_spec(tmp_path: Path, models: dict[str, dict], group: str = "") -> Path:
    text = GENERATED.format(
        models="".join(
            MODEL.format(name=n, **{"rois": ROIS, "epochs": 1, "workers": 0, **m}) for n, m in models.items()
        )
    )
    path = tmp_path / "spec.toml"
    path.write_text(text + group)
    return path


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})


def weights(maps: MapsLayout) -> dict[str, torch.Tensor]:
    return load_model_state(maps.best_model(0, "loss"))[0]


def test_a_roi_model_trains_predicts_saves_tensors_and_interprets(tmp_path):
    path = generated_spec(tmp_path, {"roi": {}}, GROUP)
    run_apply(path)
    assert {p.action for p in make_plan(load_spec(path)).steps} == {"="}
    maps = MapsLayout(tmp_path / "maps/roi")
    regions = read_tsv(maps.prediction_tsv(*WHERE, "roi"))
    images = read_tsv(maps.prediction_tsv(*WHERE, "image"))
    assert regions["roi_id"].tolist() == [0, 1] * 4 and len(images) == 4
    assert read_tsv(maps.metrics_tsv(*WHERE, "roi"))["BA"].notna().all()
    assert maps.metrics_tsv(*WHERE, "image").is_file()
    for _, image in images.iterrows():  # a soft vote: between the image's two regions
        probas = regions[regions["participant_id"] == image["participant_id"]]["proba1"]
        assert probas.min() - 1e-9 <= image["proba1"] <= probas.max() + 1e-9

    caps = CapsLayout(tmp_path / "data/test")
    participant = images["participant_id"][0]
    source = nib.load(caps.t1_linear_nifti(participant, "ses-M000"))
    folded = nib.load(maps.nifti_file(*WHERE, participant, "ses-M000", "input"))
    assert np.allclose(folded.affine, source.affine) and folded.shape == source.shape
    volume, covered = np.asarray(folded.dataobj), np.zeros(source.shape, bool)
    for k, mask_file in enumerate((LEFT, RIGHT)):
        saved = torch.load(maps.tensor_file(*WHERE, participant, "ses-M000", "roi", k, "input"))
        region = torch.load(caps.roi_tensor(participant, "ses-M000", caps.root / mask_file, False))
        assert torch.equal(saved, region)  # the region the network read, normalised at extraction
        box = np.ix_(*box_of(np.asarray(nib.load(caps.root / mask_file).dataobj) > 0))
        assert np.array_equal(volume[box], saved[0].numpy())
        covered[box] = True
        assert maps.tensor_file(*WHERE, participant, "ses-M000", "roi", k, "output").is_file()
    assert not volume[~covered].any()

    interpreted = maps.result_dir(*WHERE) / "interpret-grad"
    for k in (0, 1):
        assert torch.load(interpreted / f"mean_roi-{k}_map.pt").shape == saved.shape
    whole = nib.load(interpreted / "mean_image-0_map.nii.gz")
    assert whole.shape == source.shape and np.allclose(whole.affine, source.affine)
    assert np.asarray(whole.dataobj)[covered].any() and not np.asarray(whole.dataobj)[~covered].any()


def test_workers_and_a_resume_never_change_the_roi_model(tmp_path):
    path = generated_spec(
        tmp_path, {"a": {"epochs": 2}, "b": {"epochs": 2}, "w2": {"epochs": 2, "workers": 2}}
    )
    run_apply(path, target="model.a.train*")
    run_apply(path, target="model.w2.train*")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target="model.b.train*")
    run_apply(path, target="model.b.train*")
    a, b, w2 = (MapsLayout(tmp_path / f"maps/{n}") for n in ("a", "b", "w2"))
    assert "training resumed after epoch 0" in b.information_log.read_text()
    for other in (b, w2):
        theirs = weights(other)
        assert all(torch.equal(t, theirs[name]) for name, t in weights(a).items())
        pd.testing.assert_frame_equal(
            read_tsv(a.training_tsv(0)).drop(columns="time"),
            read_tsv(other.training_tsv(0)).drop(columns="time"),
        )


# --- the masks of a real CAPS, judged at plan time -------------------------------------------------
REAL = """
version = 1
[compute]
workers = 0
[datasets.real]
caps = "caps"
participants = "caps/participants.tsv"
[models.m]
maps = "maps/m"
dataset = "real"
architecture = "TinyCNN"
mode = "roi"
roi = {{ list = {rois}, uncropped = true }}
multi_network = {multi}
train = {{ epochs = 1 }}
"""
EXTRACT = "dataset.real.extract[roi-leftHippocampus+rightHippocampus-uncropped]"


def real_spec(tmp_path: Path, rois: str = ROIS, multi: bool = False, uncropped: bool = True) -> Path:
    if not (tmp_path / "caps").exists():
        make_tiny_caps(tmp_path / "caps", n_subjects=4)
    text = REAL.format(rois=rois, multi=str(multi).lower())
    path = tmp_path / "spec.toml"
    path.write_text(text if uncropped else text.replace(", uncropped = true", ""))
    return path


def extract_step(path: Path, step: str = EXTRACT):
    return next(p for p in make_plan(load_spec(path)).steps if p.step.id == step)


def test_a_missing_mask_is_refused_at_plan_time_naming_the_pattern_and_folder(tmp_path):
    path = real_spec(tmp_path)
    (tmp_path / "caps" / RIGHT).unlink()
    step = extract_step(path)
    assert step.action == "!"
    assert str(tmp_path / "caps" / MASKS) in step.reasons[0]
    assert "*res-1x1x1*_roi-rightHippocampus_mask.nii*" in step.reasons[0]
    with pytest.raises(PlanRefused, match="rightHippocampus"):
        run_apply(path)
    assert not (tmp_path / "maps/m").exists()  # nothing ran


def test_a_mask_off_the_images_grid_or_not_binary_is_refused_at_plan_time(tmp_path):
    path = real_spec(tmp_path)
    mask = nib.load(tmp_path / "caps" / LEFT)
    data, affine = np.asarray(mask.dataobj), mask.affine
    nib.save(nib.Nifti1Image(data[:, :-2], affine), tmp_path / "caps" / LEFT)
    step = extract_step(path)
    assert step.action == "!" and "has shape (21, 24, 22), the image" in step.reasons[0]
    nib.save(nib.Nifti1Image(data * 2.0, affine), tmp_path / "caps" / LEFT)
    step = extract_step(path)
    assert step.action == "!" and "must be binary (0 and 1, both present), it holds 0, 2" in step.reasons[0]


def test_regions_of_other_shapes_for_one_network_are_refused_at_plan_time(tmp_path):
    path = real_spec(tmp_path, uncropped=False)
    step = extract_step(path, EXTRACT.replace("-uncropped", ""))
    assert step.action == "+"  # the generator's two halves have boxes of one shape
    mask = nib.load(tmp_path / "caps" / LEFT)
    thinner = np.asarray(mask.dataobj).copy()
    thinner[np.argwhere(thinner)[0][0]] = 0
    nib.save(nib.Nifti1Image(thinner, mask.affine), tmp_path / "caps" / LEFT)
    step = extract_step(path, EXTRACT.replace("-uncropped", ""))
    assert step.action == "!"
    assert (
        "models.m: the regions' boxes differ in shape (leftHippocampus 1x5x3, rightHippocampus 2x5x3)"
        in (step.reasons[0])
    )
    assert "multi_network = true" in step.reasons[0]
    step = extract_step(real_spec(tmp_path, multi=True, uncropped=False), EXTRACT.replace("-uncropped", ""))
    assert step.action == "+"


def test_an_unknown_region_of_a_generated_dataset_is_refused_before_it_is_generated(tmp_path):
    path = generated_spec(tmp_path, {"roi": {"rois": '["leftAmygdala"]'}})
    step = extract_step(path, "dataset.demo.extract[roi-leftAmygdala]")
    assert step.action == "!"
    assert "has ROI masks leftHippocampus and rightHippocampus only, not leftAmygdala" in step.reasons[0]


def test_a_changed_mask_plans_the_extraction_again(tmp_path):
    path = real_spec(tmp_path)
    run_apply(path, target=EXTRACT)
    assert extract_step(path).action == "="
    other = tmp_path / "caps" / LEFT
    shutil.copy(tmp_path / "caps" / RIGHT, other)  # another region under the left mask's name
    step = extract_step(path)
    assert step.action == "~" and any(LEFT in reason for reason in step.reasons), step.reasons
    run_apply(path, target=EXTRACT)
    caps = CapsLayout(tmp_path / "caps")
    region = torch.load(caps.roi_tensor("sub-0000", "ses-M000", other, True))
    right = torch.load(caps.roi_tensor("sub-0000", "ses-M000", tmp_path / "caps" / RIGHT, True))
    assert torch.equal(region, right)


def test_the_mask_line_of_a_roi_model_speaks_of_its_regions_not_the_brain():
    from types import SimpleNamespace

    from neuroexec.inference.interpret import _mask_line

    task = SimpleNamespace(
        interpretation=SimpleNamespace(name="grad"), group=SimpleNamespace(name="test"), split=0
    )
    share = {"mass_inside": 0.6, "brain_share": 1.0, "ratio": 0.6}
    assert "covers 100.0% of the regions the model reads" in _mask_line(
        task, Path("h.nii.gz"), share, roi=True
    )
    assert "covers 100.0% of the brain" in _mask_line(task, Path("h.nii.gz"), share)


def test_region_files_neuroexec_did_not_write_are_planned_as_replaced(tmp_path):
    path = real_spec(tmp_path)
    caps = CapsLayout(tmp_path / "caps")
    foreign = caps.roi_tensor("sub-0001", "ses-M000", caps.root / LEFT, True)
    foreign.parent.mkdir(parents=True)
    torch.save(torch.zeros(1, 2, 2, 2), foreign)  # as ClinicaDL's prepare-data roi would have
    step = extract_step(path)
    assert [r.paths for r in step.removals] == [(foreign,)]
    run_apply(path, target=EXTRACT)
    assert torch.load(foreign).shape == (1, 21, 26, 22)
    assert extract_step(path).removals == []


def test_a_deleted_generated_mask_plans_the_generation_again_not_a_refusal(tmp_path):
    path = generated_spec(tmp_path, {"roi": {}})
    run_apply(path, target="dataset.demo.extract*")
    mask = tmp_path / "data/demo" / LEFT
    original = mask.read_bytes()
    mask.unlink()
    plan = {p.step.id: p for p in make_plan(load_spec(path)).steps}
    assert plan["dataset.demo.generate"].action == "~"
    assert any("is missing" in r and "leftHippocampus" in r for r in plan["dataset.demo.generate"].reasons)
    assert plan["dataset.demo.extract[roi-leftHippocampus+rightHippocampus]"].action != "!"
    run_apply(path, target="dataset.demo.extract*")
    assert mask.read_bytes() == original

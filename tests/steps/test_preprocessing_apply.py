"""plan/apply on CAPS of other preprocessings than t1-linear: a pet-linear and a custom dataset are
extracted under ClinicaDL's names, a model trains 1 epoch on each and predicts, maps.json carries
ClinicaDL's preprocessing keys, and the extract step's fingerprint covers the PET file pattern."""

from __future__ import annotations

import json
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.maps.info import read_maps_info
from neuroexec.plan.graph import make_plan
from neuroexec.preprocessings import Preprocessing
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import as_preprocessing, make_tiny_caps

SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.d]
caps = "caps"
participants = "caps/participants.tsv"
{dataset}
[models.m]
maps = "maps/m"
dataset = "d"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1 }}
[groups.again]
dataset = "d"
models = ["m"]
selection_metrics = ["loss"]
skip_leak_check = true
"""
PET = 'preprocessing = "pet-linear"\ntracer = "18FFDG"\nsuvr_reference_region = "{suvr}"'
CUSTOM_SUFFIX = "segm-graymatter_probability.nii.gz"


def project(tmp_path: Path, preprocessing: Preprocessing, dataset: str, folder: str | None = None) -> Path:
    caps, _ = make_tiny_caps(tmp_path / "caps", n_subjects=6, shape=(12, 14, 12))
    as_preprocessing(caps, preprocessing, folder)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(dataset=dataset))
    return spec


def run(spec: Path) -> dict[str, str]:
    plan = make_plan(load_spec(spec))
    actions = {p.step.id: p.action for p in plan.steps}
    apply(plan, RunContext(reporter=Reporter(quiet=True)))
    return actions


def test_pet_linear_extracts_trains_and_predicts_and_its_pattern_is_fingerprinted(tmp_path):
    spec = project(
        tmp_path,
        Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons"),
        PET.format(suvr="pons"),
    )
    run(spec)
    caps = tmp_path / "caps"
    tensors = sorted(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/pet_linear/*.pt"))
    assert [t.name for t in tensors[:1]] == [
        "sub-0000_ses-M000_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.pt"
    ]
    assert len(tensors) == 6
    assert not list(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/t1_linear"))
    pre = json.loads((tmp_path / "maps/m/maps.json").read_text())["preprocessing_dict"]
    assert {k: pre[k] for k in ("preprocessing", "tracer", "suvr_reference_region")} == {
        "preprocessing": "pet-linear",
        "tracer": "18FFDG",
        "suvr_reference_region": "pons",
    }
    assert pre["file_type"]["pattern"] == (
        "pet_linear/*_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz"
    )
    assert Preprocessing.of(read_maps_info(tmp_path / "maps/m")).suvr_reference_region == "pons"
    assert list((tmp_path / "maps/m").glob("split-0/best-loss/again/again_image_level_prediction.tsv"))
    assert set(run(spec).values()) == {"="}

    # Other PET images (another SUVR reference region): the extraction is planned again, and reads them.
    for nifti in caps.glob("subjects/*/*/pet_linear/*.nii.gz"):
        nifti.rename(nifti.with_name(nifti.name.replace("suvr-pons", "suvr-cerebellumPons")))
    spec.write_text(SPEC.format(dataset=PET.format(suvr="cerebellumPons")))
    actions = run(spec)
    assert actions["dataset.d.extract[image]"] == "~"
    assert (
        len(
            list(
                caps.glob(
                    "subjects/*/*/deeplearning_prepare_data/image_based/pet_linear/*suvr-cerebellumPons_pet.pt"
                )
            )
        )
        == 6
    )


def test_custom_images_below_the_session_extract_and_train(tmp_path):
    custom = Preprocessing("custom", custom_suffix=CUSTOM_SUFFIX)
    dataset = f'preprocessing = "custom"\ncustom_suffix = "{CUSTOM_SUFFIX}"'
    spec = project(tmp_path, custom, dataset, folder="t1/spm/segmentation/normalized_space")
    run(spec)
    caps = tmp_path / "caps"
    tensors = sorted(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/custom/*.pt"))
    assert [t.name for t in tensors] == [f"sub-{i:04d}_ses-M000_{CUSTOM_SUFFIX[:-7]}.pt" for i in range(6)]
    record = json.loads((caps / "tensor_extraction/extract_image.json").read_text())
    assert (record["preprocessing"], record["custom_suffix"], record["use_uncropped_image"]) == (
        "custom",
        CUSTOM_SUFFIX,
        None,
    )
    assert record["file_type"] == {"pattern": f"*{CUSTOM_SUFFIX}", "description": "Custom suffix"}
    pre = json.loads((tmp_path / "maps/m/maps.json").read_text())["preprocessing_dict"]
    assert (pre["preprocessing"], pre["custom_suffix"]) == ("custom", CUSTOM_SUFFIX)
    assert list((tmp_path / "maps/m").glob("split-0/best-loss/again/again_image_level_prediction.tsv"))


def test_two_preprocessings_of_one_caps_keep_their_own_tensors(tmp_path):
    """A CAPS holding t1-linear and pet-linear images, read by two datasets: each extract step's outputs
    are its own tensors, so a deleted t1-linear tensor re-runs the t1-linear extraction only."""
    caps, _ = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    as_preprocessing(
        caps, Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons"), keep=True
    )
    both = SPEC.format(dataset="").split("[models.m]")[0] + (
        '[datasets.p]\ncaps = "caps"\nparticipants = "caps/participants.tsv"\n'
        + PET.format(suvr="pons")
        + "\n"
    )
    for name in ("d", "p"):
        both += f'[models.{name}]\nmaps = "maps/{name}"\ndataset = "{name}"\narchitecture = "TinyCNN"\n'
    spec = tmp_path / "spec.toml"
    spec.write_text(both)
    apply(make_plan(load_spec(spec)), RunContext(reporter=Reporter(quiet=True)), target="dataset.*.extract*")
    t1 = sorted(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/t1_linear/*.pt"))
    pet = sorted(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/pet_linear/*.pt"))
    assert len(t1) == len(pet) == 4
    t1[0].unlink()
    actions = {p.step.id: p.action for p in make_plan(load_spec(spec)).steps if p.step.kind == "extract"}
    assert actions == {"dataset.d.extract[image]": "~", "dataset.p.extract[image]": "="}

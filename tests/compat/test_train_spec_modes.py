"""`train` on a roi / slice preprocessing JSON, --multi_network, --selection_threshold -> the spec's
model (`mode`, `roi = {...}`, `slice = {...}`, `multi_network`), with ClinicaDL 1.6.1's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.compat.clinicadl_config import read_train_config
from neuroexec.compat.train_spec import TrainOptions, train_spec_dict
from neuroexec.errors import InputError
from neuroexec.spec import spec_from_dict


def write_json(caps: Path, name: str, content: dict) -> str:
    folder = caps / "tensor_extraction"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"preprocessing": "t1-linear", **content}))
    return name


def build(tmp_path: Path, data: dict, name: str, options: dict | None = None, task: str = "classification"):
    # --no-gpu: ClinicaDL's train uses the GPU by default, and this machine may have none
    opts = TrainOptions(
        task, data["caps"], name, data["split"], tmp_path / "maps", {"gpu": False, **(options or {})}
    )
    doc = train_spec_dict(opts)
    return doc, spec_from_dict(doc, tmp_path / "spec.toml")


@pytest.fixture
def caps(tmp_path, tiny_data) -> dict:
    """The tiny data with a CAPS of its own, so that its tensor_extraction/ JSONs are this test's."""
    own = tmp_path / "caps"
    own.mkdir()
    return {**tiny_data, "caps": own}


def test_roi_json_gives_the_roi_table(tmp_path, caps):
    name = write_json(caps["caps"], "extract_roi.json", {"mode": "roi", "prepare_dl": True,
                      "roi_list": ["leftHippocampus", "rightHippocampus"], "uncropped_roi": True,
                      "roi_custom_template": "", "roi_custom_mask_pattern": ""})  # fmt: skip
    doc, spec = build(tmp_path, caps, name)
    table = doc["models"]["classification"]
    assert table["mode"] == "roi" and table["roi"] == {
        "list": ["leftHippocampus", "rightHippocampus"],
        "uncropped": True,
    }
    model = spec.models["classification"]
    assert model.roi.names == ("leftHippocampus", "rightHippocampus") and model.roi.uncropped
    assert not model.multi_network and "multi_network" not in table  # ClinicaDL's default: one network


def test_slice_json_defaults_are_clinicadls(tmp_path, caps):
    # ClinicaDL's prepare-data slice defaults: sagittal, rgb, no slice discarded.
    name = write_json(caps["caps"], "extract_slice.json", {"mode": "slice"})
    doc, spec = build(tmp_path, caps, name)
    assert doc["models"]["classification"]["slice"] == {"direction": 0, "mode": "rgb", "discarded": [0, 0]}
    assert "patch_layout" not in doc["datasets"]["data"]  # prepare_dl false: neuroexec's bundles
    s = spec.models["classification"].slice
    assert (s.direction, s.mode, s.discarded) == (0, "rgb", (0, 0))


def test_slice_json_settings_and_clinicadl_files(tmp_path, caps):
    name = write_json(caps["caps"], "s.json", {"mode": "slice", "prepare_dl": True, "slice_direction": 2,
                                               "slice_mode": "single", "discarded_slices": [5]})  # fmt: skip
    doc, spec = build(tmp_path, caps, name)
    assert doc["models"]["classification"]["slice"] == {"direction": 2, "mode": "single", "discarded": [5, 5]}
    assert spec.datasets["data"].patch_layout == "clinicadl"  # ClinicaDL saved one file per slice: reused
    name = write_json(caps["caps"], "s2.json", {"mode": "slice", "discarded_slices": [2, 7]})
    assert build(tmp_path, caps, name)[1].models["classification"].slice.discarded == (2, 7)


@pytest.mark.parametrize(
    "content, field",
    [
        ({"mode": "slice", "slice_direction": 3}, "slice_direction"),
        ({"mode": "slice", "slice_mode": "gray"}, "slice_mode"),
        ({"mode": "slice", "discarded_slices": [1, 2, 3]}, "discarded_slices"),
        ({"mode": "slice", "num_slices": 1}, "num_slices"),
        (
            {"mode": "roi", "roi_list": ["a"], "preprocessing": "custom", "custom_suffix": "x.nii.gz"},
            "roi_custom_template",
        ),
        ({"mode": "roi", "roi_list": []}, "roi_list"),
        ({"mode": "roi", "roi_list": ["left_hippocampus"]}, "roi_list"),
        ({"mode": "roi", "roi_list": ["a"], "roi_background_value": 1}, "roi_background_value"),
        ({"mode": "voxel"}, "mode"),
    ],
)
def test_bad_json_names_the_file_and_the_key(tmp_path, caps, content, field):
    name = write_json(caps["caps"], "bad.json", content)
    with pytest.raises(InputError) as err:
        build(tmp_path, caps, name)
    assert err.value.field == field and err.value.path.endswith("bad.json")


def test_multi_network_lands_in_the_spec(tmp_path, caps):
    name = write_json(caps["caps"], "p.json", {"mode": "patch", "patch_size": 10, "stride_size": 10})
    doc, spec = build(tmp_path, caps, name, {"multi_network": True})
    assert (
        doc["models"]["classification"]["multi_network"] is True
        and spec.models["classification"].multi_network
    )
    assert (
        "multi_network"
        not in build(tmp_path, caps, name, {"multi_network": False})[0]["models"]["classification"]
    )


def test_multi_network_of_an_image_json_names_the_flag(tmp_path, caps):
    with pytest.raises(InputError, match="image-based") as err:
        build(tmp_path, caps, "t1-linear", {"multi_network": True})
    assert err.value.field == "--multi_network"


def test_selection_threshold(tmp_path, caps):
    name = write_json(caps["caps"], "p.json", {"mode": "patch", "patch_size": 10, "stride_size": 10})
    doc, _ = build(tmp_path, caps, name, {"selection_threshold": 0.0})  # ClinicaDL's default: nothing to say
    model = doc["models"]["classification"]
    assert "selection_threshold" not in model and "selection_threshold" not in model.get("train", {})
    doc, spec = build(tmp_path, caps, name, {"selection_threshold": 0.6})
    assert doc["models"]["classification"]["selection_threshold"] == 0.6
    assert spec.models["classification"].selection_threshold == 0.6


def test_config_file_sets_the_part_options(tmp_path, caps):
    config = tmp_path / "c.toml"
    config.write_text("[Model]\nmulti_network = true\n[Classification]\nselection_threshold = 0.5\n")
    assert read_train_config(config) == {"multi_network": True, "selection_threshold": 0.5}
    config.write_text("[Model]\nmulti_network = false\n[Classification]\nselection_threshold = 0.0\n")
    options = read_train_config(config)
    assert options == {"multi_network": False, "selection_threshold": 0.0}
    name = write_json(
        caps["caps"], "extract_patch.json", {"mode": "patch", "patch_size": 8, "stride_size": 8}
    )
    model = build(tmp_path, caps, name, options)[0]["models"]["classification"]
    # ClinicaDL's defaults: one network, no threshold, as without the config file
    assert "multi_network" not in model and "selection_threshold" not in model
    assert model == build(tmp_path, caps, name)[0]["models"]["classification"]


def test_pet_linear_json_gives_the_dataset_its_preprocessing(tmp_path, caps):
    name = write_json(caps["caps"], "pet.json", {"mode": "image", "preprocessing": "pet-linear",
                                                 "tracer": "18FFDG", "suvr_reference_region": "pons"})  # fmt: skip
    doc, spec = build(tmp_path, caps, name)
    data = doc["datasets"]["data"]
    assert (data["preprocessing"], data["tracer"], data["suvr_reference_region"]) == (
        "pet-linear",
        "18FFDG",
        "pons",
    )
    assert spec.datasets["data"].preprocessing == "pet-linear"

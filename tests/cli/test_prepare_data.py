"""`neuroexec prepare-data image|patch|roi|slice CAPS MODALITY` (ClinicaDL 1.6.1's): the engine's extract
step (incremental, re-used by `train`), ClinicaDL's record `tensor_extraction/<extract_json>` with its keys,
and bad input (one sentence, exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.cli import main
from tests.compat.conftest import SHAPE
from tests.helpers import make_tiny_caps

STEM = "T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1"
FAST = ["--epochs", "1", "--batch_size", "2", "--no-gpu", "-np", "0", "-a", "TinyCNN", "-s", "0", "--quiet"]


@pytest.fixture
def caps(tmp_path) -> Path:
    """A CAPS of NIfTIs only: the 8 subjects of tiny_data (same generator seed), no tensor yet."""
    return make_tiny_caps(tmp_path / "caps", n_subjects=8, shape=SHAPE)[0]


def tensors(caps: Path, mode: str) -> dict[str, int]:
    """Tensor file -> its mtime, of one `<mode>_based` folder of every session."""
    files = caps.glob(f"subjects/*/*/deeplearning_prepare_data/{mode}_based/t1_linear/*.pt")
    return {str(p.relative_to(caps)): p.stat().st_mtime_ns for p in files}


def record(caps: Path, name: str) -> dict:
    return json.loads((caps / "tensor_extraction" / name).read_text())


def test_image_writes_the_tensors_and_clinicadls_record(caps, capsys):
    assert main(["prepare-data", "image", str(caps), "t1-linear", "--extract_json", "mine", "--quiet"]) == 0
    assert len(tensors(caps, "image")) == 8  # every sub-*/ses-* of the CAPS
    content = record(caps, "mine.json")
    assert {k: content[k] for k in ("preprocessing", "mode", "use_uncropped_image", "prepare_dl", "extract_json")} == {
        "preprocessing": "t1-linear", "mode": "image", "use_uncropped_image": False, "prepare_dl": False,
        "extract_json": "mine.json"}  # fmt: skip
    assert content["file_type"]["pattern"] == f"*{STEM.replace('T1w_', '', 1)}_T1w.nii.gz"
    before = tensors(caps, "image")
    capsys.readouterr()
    assert main(["prepare-data", "image", str(caps), "t1-linear", "--extract_json", "mine.json"]) == 0
    assert "Nothing to do" in capsys.readouterr().out and tensors(caps, "image") == before


def test_default_record_name_is_clinicadls_timestamp(caps):
    assert main(["prepare-data", "image", str(caps), "t1-linear", "--quiet"]) == 0
    names = [p.name for p in (caps / "tensor_extraction").glob("*.json")]
    stamped = [n for n in names if re.fullmatch(r"extract_\d{10}\.json", n)]
    assert len(stamped) == 1 and record(caps, stamped[0])["extract_json"] == stamped[0]


def test_patch_save_features_is_reused_by_train(caps, tiny_data, tmp_path, capsys):
    argv = ["prepare-data", "patch", str(caps), "t1-linear", "--patch_size", "10", "--stride_size", "10",
            "--save_features", "--extract_json", "extract_p10", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    files = tensors(caps, "patch")
    assert len(files) == 8 * 8 and any(
        f.endswith(f"{STEM}_patchsize-10_stride-10_patch-7_T1w.pt") for f in files
    )
    content = record(caps, "extract_p10.json")
    assert (content["mode"], content["prepare_dl"], content["patch_size"], content["stride_size"]) == (
        "patch",
        True,
        10,
        10,
    )
    # The training's spec, applied up to its extraction (the training itself is tested in test_train_modes.py).
    train = [
        "train",
        "classification",
        str(caps),
        "extract_p10.json",
        str(tiny_data["split"]),
        str(tmp_path / "m"),
        "--no-gpu",  # ClinicaDL's train uses the GPU by default
    ]
    capsys.readouterr()
    assert main([*train, "--print-spec"]) == 0
    spec = tmp_path / "train.toml"
    spec.write_text(capsys.readouterr().out)
    assert main(["apply", str(spec), "--target", "dataset.*", "--quiet"]) == 0
    assert tensors(caps, "patch") == files  # the same extraction: nothing cut again


def test_slice_without_save_features_extracts_images_only(caps):
    argv = ["prepare-data", "slice", str(caps), "t1-linear", "--slice_direction", "1", "--slice_mode", "single",
            "--discarded_slices", "3", "--extract_json", "s.json", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert len(tensors(caps, "image")) == 8 and not tensors(caps, "slice")  # ClinicaDL: slices cut when read
    content = record(caps, "s.json")
    assert (content["mode"], content["prepare_dl"]) == ("slice", False)
    assert (content["slice_direction"], content["slice_mode"], content["discarded_slices"]) == (
        1,
        "single",
        [3, 3],
    )


def test_roi_save_features_then_multi_network_training(caps, tiny_data, tmp_path):
    argv = ["prepare-data", "roi", str(caps), "t1-linear", "--roi_list", "leftHippocampus", "rightHippocampus",
            "--roi_uncrop_output", "--save_features", "--extract_json", "hippocampi", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert len(tensors(caps, "roi")) == 8 * 2
    content = record(caps, "hippocampi.json")
    assert content["roi_list"] == ["leftHippocampus", "rightHippocampus"] and content["uncropped_roi"] is True
    assert (content["roi_template"], content["roi_mask_pattern"]) == ("MNI152NLin2009cSym", "res-1x1x1")
    assert content["masks_location"] == str(caps.resolve() / "masks" / "tpl-MNI152NLin2009cSym")
    before = tensors(caps, "roi")
    maps = tmp_path / "maps"
    train = ["train", "classification", str(caps), "hippocampi.json", str(tiny_data["split"]), str(maps), *FAST,
             "--multi_network"]  # fmt: skip
    assert main(train) == 0
    assert tensors(caps, "roi") == before
    assert sorted(p.name for p in (maps / "split-0/best-loss").glob("network-*")) == [
        "network-0_model.pth.tar", "network-1_model.pth.tar"]  # fmt: skip


def test_the_record_under_the_extract_steps_own_name_is_the_same(caps):
    # extract_<mode>.json is the record the extract step writes itself: the command's is the same content.
    for name in ("extract_slice", "axial"):
        argv = [
            "prepare-data",
            "slice",
            str(caps),
            "t1-linear",
            "-sd",
            "2",
            "--save_features",
            "-ej",
            name,
            "--quiet",
        ]
        assert main(argv) == 0
    own, named = record(caps, "extract_slice.json"), record(caps, "axial.json")
    assert named.pop("extract_json") == "axial.json" and own.pop("extract_json") == "extract_slice.json"
    assert {k: own[k] for k in named} == named and own["prepare_dl"] is True  # ClinicaDL's files were saved


def test_participants_tsv_limits_the_sessions(caps, tmp_path):
    sessions = sorted(p for p in caps.glob("subjects/sub-*/ses-*"))[:3]
    frame = pd.DataFrame(
        {"participant_id": [s.parent.name for s in sessions], "session_id": [s.name for s in sessions]}
    )
    tsv = tmp_path / "three.tsv"
    frame.to_csv(tsv, sep="\t", index=False)
    assert (
        main(["prepare-data", "image", str(caps), "t1-linear", "-tsv", str(tsv), "-ej", "three", "--quiet"])
        == 0
    )
    assert len(tensors(caps, "image")) == 3


def test_an_existing_record_of_another_extraction_is_refused(caps, capsys):
    assert main(["prepare-data", "image", str(caps), "t1-linear", "-ej", "mine", "--quiet"]) == 0
    capsys.readouterr()
    argv = ["prepare-data", "patch", str(caps), "t1-linear", "--save_features", "-ej", "mine", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mine.json [--extract_json]" in err and len(err.strip().splitlines()) == 1
    assert not tensors(caps, "patch") and record(caps, "mine.json")["mode"] == "image"


@pytest.mark.parametrize(
    "args, said",
    [
        (["image", "{caps}", "t1-linear", "--tracer", "18FFDG"], "[--tracer]"),
        (["slice", "{caps}", "t1-linear", "--discarded_slices", "1", "2", "3"], "[--discarded_slices]"),
        (["roi", "{caps}", "t1-linear", "--roi_list", "left_hippocampus"], "[--roi_list]"),
        (["image", "{caps}", "t1-extensive"], "t1-extensive"),
        (["image", "{caps}/nowhere", "t1-linear"], "CAPS folder not found"),
        (["patch", "{caps}", "t1-linear", "--stride_size", "0"], "[--stride_size]"),
        (["slice", "{caps}", "t1-linear", "-ej", "extract_image"], "extract_image.json [--extract_json]"),
        (
            ["slice", "{caps}", "t1-linear", "--save_features", "-ds", "2", "-ej", "extract_slice"],
            "discarded_slices",
        ),
        (["roi", "{caps}", "custom", "-cn", "_T1w.nii.gz", "--roi_list", "a"], "[--roi_custom_template]"),
        (["roi", "{caps}", "t1-linear", "--roi_list", "amygdala", "--save_features"], "roi-amygdala"),
    ],
)
def test_bad_input_is_exit_2(caps, capsys, args, said):
    argv = ["prepare-data", *(a.replace("{caps}", str(caps)) for a in args), "--quiet"]
    assert main(argv) == 2
    assert said in capsys.readouterr().err
    assert not tensors(caps, "image") and not tensors(caps, "roi")


def test_print_spec_extracts_nothing(caps, capsys):
    argv = ["prepare-data", "slice", str(caps), "t1-linear", "--save_features", "-sd", "2", "--print-spec"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert 'mode = "slice"' in printed and 'patch_layout = "clinicadl"' in printed
    assert not (caps / "tensor_extraction").exists() and not tensors(caps, "slice")

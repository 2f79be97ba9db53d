"""`neuroexec train` on roi / slice / patch preprocessing JSONs with ClinicaDL's part flags: the spec it
builds, one epoch on the tiny CAPS (one network per part with --multi_network), and bad input (exit 2)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.maps.info import read_maps_info

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAST = ["--epochs", "1", "--batch_size", "2", "--no-gpu", "-np", "0", "-a", "TinyCNN", "-s", "0", "--quiet"]


@pytest.fixture(scope="module")
def caps(tmp_path_factory, tiny_data) -> Path:
    """A copy of the tiny CAPS (20^3 images) with ClinicaDL preprocessing JSONs of each mode, under names
    the extract step does not write itself (its own record is `extract_<mode>.json`)."""
    root = tmp_path_factory.mktemp("modes") / "caps"
    shutil.copytree(tiny_data["caps"], root)
    records = {
        "patches.json": {"mode": "patch", "patch_size": 10, "stride_size": 10, "prepare_dl": False},
        "axial.json": {"mode": "slice", "slice_direction": 2, "slice_mode": "single",
                               "discarded_slices": [9], "prepare_dl": False},
        "hippocampus.json": {"mode": "roi", "roi_list": ["leftHippocampus"], "uncropped_roi": False,
                             "roi_custom_template": "", "roi_custom_mask_pattern": "", "prepare_dl": True},
        "hippocampi.json": {"mode": "roi", "roi_list": ["leftHippocampus", "rightHippocampus"],
                            "uncropped_roi": False, "roi_custom_template": "", "roi_custom_mask_pattern": "",
                            "prepare_dl": True},
        "roi_on_the_fly.json": {"mode": "roi", "roi_list": ["leftHippocampus"], "uncropped_roi": True,
                                "roi_custom_template": "", "roi_custom_mask_pattern": "", "prepare_dl": False},
        "bad_slice.json": {"mode": "slice", "slice_direction": 5},
    }  # fmt: skip
    (root / "tensor_extraction").mkdir(exist_ok=True)
    for name, content in records.items():
        content = {"preprocessing": "t1-linear", "use_uncropped_image": False, **content}
        (root / "tensor_extraction" / name).write_text(json.dumps(content))
    return root


def printed_spec(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    # --no-gpu: ClinicaDL's `train TASK` uses the GPU by default (an error without one)
    assert main([*argv, "--no-gpu", "--print-spec"]) == 0
    return tomllib.loads(capsys.readouterr().out)


def test_roi_multi_network_builds_the_spec(tmp_path, tiny_data, caps, capsys):
    argv = ["train", "classification", str(caps), "hippocampi.json", str(tiny_data["split"]), str(tmp_path / "m"),
            "--multi_network"]  # fmt: skip
    model = printed_spec(capsys, argv)["models"]["classification"]
    assert model["mode"] == "roi" and model["multi_network"] is True
    assert model["roi"] == {"list": ["leftHippocampus", "rightHippocampus"], "uncropped": False}
    config = tmp_path / "config.toml"
    config.write_text("[Model]\nmulti_network = true\n")
    argv = [*argv[:-1], "--config_file", str(config)]
    assert printed_spec(capsys, argv)["models"]["classification"]["multi_network"] is True
    assert (
        "multi_network" not in printed_spec(capsys, [*argv, "--single_network"])["models"]["classification"]
    )


def test_one_network_per_region_of_a_single_region_is_refused(tmp_path, tiny_data, caps, capsys):
    argv = ["train", "classification", str(caps), "hippocampus.json", str(tiny_data["split"]), str(tmp_path / "m"),
            "--multi_network", "--no-gpu", "--print-spec"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2  # as ClinicaDL: a multi-network model needs 2 parts or more
    err = capsys.readouterr().err
    assert "multi_network" in err and "2 regions" in err and "Traceback" not in err


def test_slice_trains_one_epoch(tmp_path, tiny_data, caps, capsys):
    maps = tmp_path / "maps"
    argv = [
        "train",
        "classification",
        str(caps),
        "axial.json",
        str(tiny_data["split"]),
        str(maps),
        *FAST,
    ]
    assert main(argv) == 0
    info = read_maps_info(maps)
    assert (info.mode, info.slice_direction, info.slice_mode, info.discarded_slices) == (
        "slice",
        2,
        "single",
        (9, 9),
    )
    assert (maps / "split-0/best-loss/model.pth.tar").is_file()
    capsys.readouterr()
    assert main(argv) == 0
    assert "Nothing to do" in capsys.readouterr().out  # the same command again


def test_roi_record_without_saved_regions_still_trains(tmp_path, tiny_data, caps):
    # ClinicaDL cuts the regions from the image tensors when prepare_dl is false; neuroexec extracts them.
    maps = tmp_path / "maps"
    argv = [
        "train",
        "classification",
        str(caps),
        "roi_on_the_fly.json",
        str(tiny_data["split"]),
        str(maps),
        *FAST,
    ]
    assert main(argv) == 0
    info = read_maps_info(maps)
    assert (info.mode, info.roi_list, info.uncropped_roi) == ("roi", ("leftHippocampus",), True)
    assert (maps / "split-0/best-loss/model.pth.tar").is_file()


def test_patch_multi_network_trains_one_network_per_patch(tmp_path, tiny_data, caps):
    maps = tmp_path / "maps"
    argv = ["train", "classification", str(caps), "patches.json", str(tiny_data["split"]), str(maps), *FAST,
            "--multi_network"]  # fmt: skip
    assert main(argv) == 0
    assert read_maps_info(maps).multi_network
    networks = sorted(p.name for p in (maps / "split-0/best-loss").glob("network-*_model.pth.tar"))
    assert networks == [f"network-{k}_model.pth.tar" for k in range(8)]  # 20^3 in patches of 10: 8


@pytest.mark.parametrize(
    "args, said",
    [
        (["roi", "cnn", "{caps}", "patches.json"], "patch-based, but `train roi` was asked"),
        (["classification", "{caps}", "t1-linear", "--multi_network"], "[--multi_network]"),
        (["classification", "{caps}", "bad_slice.json"], "bad_slice.json [slice_direction]"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, tiny_data, caps, capsys, args, said):
    head = [a.replace("{caps}", str(caps)) for a in args]
    kind_end = 2 if head[0] == "roi" else 1
    argv = [
        "train",
        *head[: kind_end + 2],
        str(tiny_data["split"]),
        str(tmp_path / "m"),
        *head[kind_end + 2 :],
        "--no-gpu",
    ]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1


def test_a_record_under_the_extract_steps_own_name_keeps_its_settings(tmp_path, tiny_data, caps, capsys):
    own = tmp_path / "caps"
    shutil.copytree(tiny_data["caps"], own)  # no slice extracted yet
    record = own / "tensor_extraction" / "extract_slice.json"
    record.write_text((caps / "tensor_extraction" / "axial.json").read_text())
    argv = [
        "train",
        "classification",
        str(own),
        "extract_slice.json",
        str(tiny_data["split"]),
        str(tmp_path / "m"),
        "--no-gpu",
    ]
    capsys.readouterr()
    assert main([*argv, "--print-spec"]) == 0
    spec = tmp_path / "train.toml"
    spec.write_text(capsys.readouterr().out)
    assert main(["apply", str(spec), "--target", "dataset.*", "--quiet"]) == 0  # its extraction only
    assert json.loads(record.read_text())["discarded_slices"] in ([9], [9, 9])


def test_the_older_form_and_the_mode_flags_define_the_parts(tmp_path, tiny_data, caps, capsys):
    """`train slice|roi|patch cnn CAPS t1-linear ...` (ClinicaDL's older form) takes the parts from the
    prepare-data flags, with ClinicaDL's defaults; with a JSON the flags replace its values."""
    where = [str(caps), "t1-linear", str(tiny_data["split"]), str(tmp_path / "m")]
    model = printed_spec(capsys, ["train", "slice", "cnn", *where])["models"]["cnn"]
    assert model["mode"] == "slice" and model["slice"]["direction"] == 0 and model["slice"]["mode"] == "rgb"
    flags = ["--slice_direction", "2", "--slice_mode", "single", "--discarded_slices", "3", "5"]
    model = printed_spec(capsys, ["train", "slice", "cnn", *where, *flags])["models"]["cnn"]
    assert model["slice"] == {"direction": 2, "mode": "single", "discarded": [3, 5]}
    model = printed_spec(capsys, ["train", "roi", "cnn", *where, "--roi_list", "leftHippocampus"])["models"][
        "cnn"
    ]
    assert model["mode"] == "roi" and model["roi"]["list"] == ["leftHippocampus"]
    model = printed_spec(capsys, ["train", "patch", "cnn", *where, "--patch_size", "8"])["models"]["cnn"]
    assert model["patch"] == {"size": 8, "stride": 8}
    json_form = ["train", "classification", str(caps), "axial.json", *where[2:], "--discarded_slices", "2"]
    model = printed_spec(capsys, json_form)["models"]["classification"]
    assert model["slice"]["direction"] == 2 and model["slice"]["discarded"] in (2, [2, 2])


def test_the_older_roi_form_without_regions_says_which_flag(tmp_path, tiny_data, caps, capsys):
    argv = ["train", "roi", "cnn", str(caps), "t1-linear", str(tiny_data["split"]), str(tmp_path / "m"),
            "--print-spec"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "roi_list" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

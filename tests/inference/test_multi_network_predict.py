"""The result steps of a multi-network model: network k on patch k for predict (every network's rows,
one metrics row per network, image level by soft voting), save-tensors (per patch, NIfTI folded back)
and interpret (maps per patch); a MAPS laid out by ClinicaDL (network-<k>_model.pth.tar) predicts the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

PATCHES = 4  # size 12, stride 10 on the 21 x 26 x 22 images at 8 mm
SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.mn]
maps = "maps/mn"
dataset = "demo"
architecture = "TinyCNN"
task = "classification"
mode = "patch"
patch = { size = 12, stride = 10 }
multi_network = true
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "other"
models = ["mn"]
save_tensors = { nifti = true }
interpret = [{ name = "grad", target = "AD", figure = false }]
"""


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})


def run(path: Path):
    return apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)))


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    (root / "spec.toml").write_text(SPEC)
    run(root / "spec.toml")
    return root


def test_predict_gives_every_network_rows_and_a_soft_voted_image_level(applied):
    maps = MapsLayout(applied / "maps/mn")
    patches = read_tsv(maps.prediction_tsv(0, "loss", "test", "patch"))
    images = read_tsv(maps.prediction_tsv(0, "loss", "test", "image"))
    assert len(images) == 4 and len(patches) == PATCHES * 4
    assert patches["patch_id"].tolist() == sorted(patches["patch_id"].tolist())  # network by network
    table = read_tsv(maps.metrics_tsv(0, "loss", "test", "patch"))
    assert table["patch_id"].tolist() == list(range(PATCHES)) and table["loss"].notna().all()
    # Image level: the test rows weighted by each patch's validation accuracy.
    validation = read_tsv(maps.prediction_tsv(0, "loss", "validation", "patch"))
    correct = validation["true_label"] == validation["predicted_label"]
    weights = (
        correct.groupby(validation["patch_id"]).mean() / correct.groupby(validation["patch_id"]).mean().sum()
    )
    first = patches[patches["participant_id"] == images["participant_id"][0]]
    assert images["proba0"][0] == pytest.approx((first["proba0"] * first["patch_id"].map(weights)).sum())
    assert "network-<k>_model.pth.tar" in maps.description_log(0, "loss", "test").read_text()
    # Applied once, the plan is up to date: the network files read are the ones recorded.
    assert {p.action for p in make_plan(load_spec(applied / "spec.toml")).steps} == {"="}


def test_save_tensors_and_interpret_work_per_patch(applied):
    maps = MapsLayout(applied / "maps/mn")
    tensors = sorted(p.name for p in maps.tensors_dir(0, "loss", "test").glob("sub-0100_*"))
    assert tensors == sorted(
        f"sub-0100_ses-M000_patch-{k}_{kind}.pt" for k in range(PATCHES) for kind in ("input", "output")
    )
    output = torch.load(maps.tensor_file(0, "loss", "test", "sub-0100", "ses-M000", "patch", 3, "output"))
    assert output.shape == (2,)
    image = nib.load(maps.nifti_file(0, "loss", "test", "sub-0100", "ses-M000", "input"))
    assert image.shape == (21, 26, 22)
    summary = json.loads(maps.interpret_summary(0, "loss", "test", "grad").read_text())
    assert summary["used_per_mode_index"] == {str(k): 4 for k in range(PATCHES)}
    for k in range(PATCHES):
        assert maps.mean_map(0, "loss", "test", "grad", "patch", k).is_file()
    assert maps.mean_map(0, "loss", "test", "grad", "image", 0, "nii.gz").is_file()


def test_a_clinicadl_multi_network_maps_predicts_with_its_network_files(applied, tmp_path):
    # The MAPS as ClinicaDL 1.6.1 leaves it: no .neuroexec/, its checkpoint dicts, its maps.json keys.
    source = MapsLayout(applied / "maps/mn")
    clinicadl = MapsLayout(tmp_path / "clinicadl")
    shutil.copytree(source.root, clinicadl.root, ignore=shutil.ignore_patterns(".neuroexec", "test"))
    parameters = json.loads(clinicadl.maps_json.read_text())
    parameters.pop("neuroexec_version")
    parameters["caps_directory"] = str(applied / "data/demo")
    clinicadl.maps_json.write_text(json.dumps(parameters, indent=4))
    for _, path in clinicadl.best_network_models(0, "loss"):
        state, epoch, name = load_model_state(path)
        torch.save({"model": state, "epoch": epoch, "name": name}, path)
    assert [k for k, _ in clinicadl.best_network_models(0, "loss")] == list(range(PATCHES))
    spec = SPEC.split("[models.mn]")[0].replace('"data/', f'"{applied}/data/')
    spec += f'[models.mn]\nmaps = "{clinicadl.root}"\n[groups.test]\ndataset = "other"\nmodels = ["mn"]\n'
    (tmp_path / "spec.toml").write_text(spec)
    run(tmp_path / "spec.toml")
    for level in ("patch", "image"):
        pd.testing.assert_frame_equal(
            read_tsv(clinicadl.prediction_tsv(0, "loss", "test", level)),
            read_tsv(source.prediction_tsv(0, "loss", "test", level)),
        )
    assert {p.action for p in make_plan(load_spec(tmp_path / "spec.toml")).steps} == {"="}


def test_selection_threshold_gives_the_parts_below_it_no_weight(tmp_path):
    from neuroexec.evaluation import ResultSet, write_results
    from neuroexec.maps import tables

    validation = tables.classification_frame(
        ["sub-01"] * 3 + ["sub-02"] * 3, ["ses-M000"] * 6, [0, 1, 2] * 2, [0, 0, 0, 1, 1, 1],
        [[2, 0], [2, 0], [0, 2], [0, 2], [2, 0], [2, 0]], "patch",
    )  # fmt: skip  # validation accuracy: patch 0 1.0, patch 1 0.5, patch 2 0.0
    maps = MapsLayout(tmp_path / "maps")
    for group in ("validation", "test"):  # the test group reads the validation table's weights
        results = ResultSet(maps, 0, "loss", group, "classification", "patch", 2, True, 0.6)
        write_results(results, validation, 0.5, part_losses={0: 0.1, 1: 0.2, 2: 0.3})
        voted = read_tsv(maps.prediction_tsv(0, "loss", group, "image"))
        only_patch_0 = validation[validation["patch_id"] == 0].reset_index(drop=True)
        assert voted["proba0"].tolist() == pytest.approx(only_patch_0["proba0"].tolist())


def test_a_missing_network_file_is_named(applied, tmp_path):
    from neuroexec.errors import InputError
    from neuroexec.inference.networks import network_count
    from neuroexec.maps.info import read_maps_info

    copy = MapsLayout(tmp_path / "copy")
    shutil.copytree(applied / "maps/mn", copy.root, ignore=shutil.ignore_patterns(".neuroexec"))
    assert network_count(read_maps_info(copy.root), 0, "loss") == PATCHES
    copy.best_model(0, "loss", 2).unlink()
    with pytest.raises(InputError, match="network-2_model.pth.tar not found"):
        network_count(read_maps_info(copy.root), 0, "loss")

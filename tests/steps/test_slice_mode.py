"""Slice mode through plan/apply: generate, extract slices, train a 2D TinyCNN for one epoch, predict
(slice level and image level by soft voting), save tensors with NIfTIs, interpret; workers and resume
change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from tests.training.test_workers_determinism import assert_same_training, interrupted
from tests.training.training_specs import run_apply, write_spec

SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 8
[datasets.demo]
caps = "data/demo"
generate = { subjects = 6, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.single]
maps = "maps/single"
dataset = "demo"
architecture = "TinyCNN"
mode = "slice"
slice = { direction = 2, mode = "single", discarded = [4, 5] }
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[models.rgb]
maps = "maps/rgb"
dataset = "demo"
architecture = "TinyCNN"
mode = "slice"
slice = { direction = 2, mode = "rgb", discarded = 3 }
compute = { channels_last = true }  # a layout of volumes: 2D slices keep theirs
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[models.ae]
maps = "maps/ae"
dataset = "demo"
task = "reconstruction"
architecture = "TinyCNN"
mode = "slice"
slice = { direction = 0, mode = "single", discarded = [2, 2] }
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "other"
models = ["single", "rgb"]
save_tensors = { nifti = true }
interpret = [{ name = "grad", target = "AD" }]
[groups.recon]
dataset = "other"
models = ["ae"]
save_tensors = { nifti = true }
"""
N_AXIAL = 22  # axial slices of the 21 x 26 x 22 images at 8 mm
KEPT = {"single": range(4, N_AXIAL - 5), "rgb": range(3, N_AXIAL - 3)}


def _normalised_slice(volume: np.ndarray, k: int) -> np.ndarray:
    plane = volume[:, :, k]
    return (plane - plane.min()) / (plane.max() - plane.min())


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slice")
    (root / "spec.toml").write_text(SPEC)
    plan = make_plan(load_spec(root / "spec.toml"))
    ids = {p.step.id for p in plan.steps}
    assert {"dataset.demo.extract[slice-axi-single]", "dataset.demo.extract[slice-axi-rgb]"} <= ids
    run_apply(root / "spec.toml")
    return root


def test_a_second_plan_has_nothing_to_do(applied: Path):
    plan = make_plan(load_spec(applied / "spec.toml"))
    assert {p.action for p in plan.steps} == {"="}, [
        (p.step.id, p.reasons) for p in plan.steps if p.action != "="
    ]


@pytest.mark.parametrize("name, channels", [("single", 1), ("rgb", 3)])
def test_maps_records_the_2d_model_as_clinicadl(applied: Path, name: str, channels: int):
    maps = MapsLayout(applied / "maps" / name)
    record = json.loads(maps.maps_json.read_text())
    assert record["mode"] == "slice" and record["input_size"] == [channels, 21, 26]
    pre = record["preprocessing_dict"]
    assert pre["slice_direction"] == 2 and pre["slice_mode"] == name
    assert pre["discarded_slices"] == [KEPT[name][0], N_AXIAL - KEPT[name][-1] - 1]
    state = load_checkpoint(maps.best_model(0, "loss"))["model"]
    assert state["convolutions.0.weight"].shape == (4, channels, 3, 3)


@pytest.mark.parametrize("name", ["single", "rgb"])
def test_slice_level_and_image_level_tables(applied: Path, name: str):
    maps = MapsLayout(applied / "maps" / name)
    for group in ("test", "validation"):
        slices = pd.read_csv(maps.prediction_tsv(0, "loss", group, "slice"), sep="\t")
        images = pd.read_csv(maps.prediction_tsv(0, "loss", group, "image"), sep="\t")
        assert "slice_id" in slices.columns and len(slices) == len(images) * len(KEPT[name])
        for _, rows in slices.groupby("participant_id"):
            assert sorted(rows["slice_id"]) == list(KEPT[name])  # ClinicaDL's absolute slice index
        assert maps.metrics_tsv(0, "loss", group, "slice").is_file()
        assert maps.metrics_tsv(0, "loss", group, "image").is_file()
    assert len(pd.read_csv(maps.prediction_tsv(0, "loss", "test", "image"), sep="\t")) == 4


def test_saved_tensors_are_the_slices_and_the_nifti_holds_them_in_image_space(applied: Path):
    maps = MapsLayout(applied / "maps" / "single")
    caps = CapsLayout(applied / "data" / "other")
    source = nib.load(str(caps.t1_linear_nifti("sub-0100", "ses-M000")))
    volume = source.get_fdata(dtype=np.float32)
    tensors = maps.tensors_dir(0, "loss", "test")
    names = sorted(p.name for p in tensors.glob("sub-0100_ses-M000_*_input.pt"))
    assert names == sorted(f"sub-0100_ses-M000_slice-{k}_input.pt" for k in KEPT["single"])
    x = torch.load(tensors / "sub-0100_ses-M000_slice-9_input.pt", weights_only=True)
    assert x.shape == (1, 21, 26)
    np.testing.assert_allclose(x[0].numpy(), _normalised_slice(volume, 9), atol=1e-6)
    nifti = nib.load(str(maps.nifti_dir(0, "loss", "test") / "sub-0100_ses-M000_image_input.nii.gz"))
    np.testing.assert_allclose(nifti.affine, source.affine)
    data = np.asarray(nifti.dataobj)
    assert data.shape == volume.shape
    for k in KEPT["single"]:
        np.testing.assert_allclose(data[:, :, k], _normalised_slice(volume, k), atol=1e-6)
    assert not data[:, :, [0, 1, 2, 3, 17, 18, 19, 20, 21]].any()  # discarded: zeros


def test_interpret_writes_2d_maps_folded_back_and_drawn(applied: Path):
    maps = MapsLayout(applied / "maps" / "rgb")
    folder = maps.interpret_dir(0, "loss", "test", "grad")
    source = nib.load(str(CapsLayout(applied / "data" / "other").t1_linear_nifti("sub-0100", "ses-M000")))
    for k in (KEPT["rgb"][0], 10, KEPT["rgb"][-1]):
        mean = torch.load(folder / f"mean_slice-{k}_map.pt", weights_only=True)
        assert mean.shape == (3, 21, 26)
        part = nib.load(str(folder / f"mean_slice-{k}_map.nii.gz"))
        assert part.shape == (21, 26, 1)  # the slice at its place: the image's affine moved to slice k
        np.testing.assert_allclose(
            part.affine[:3, 3], source.affine[:3, :3] @ [0, 0, k] + source.affine[:3, 3]
        )
        np.testing.assert_allclose(np.asarray(part.dataobj)[:, :, 0], mean[0].numpy(), atol=1e-6)
        assert (folder / f"mean_slice-{k}_map.png").read_bytes()[:4] == b"\x89PNG"
    whole = np.asarray(nib.load(str(folder / "mean_image-0_map.nii.gz")).dataobj)
    assert whole.shape == (21, 26, 22)
    assert not whole[:, :, [0, 1, 2, 19, 20, 21]].any() and whole[:, :, 10].any()
    assert not (folder / "mean_slice-2_map.pt").exists()


def test_discarding_every_slice_is_refused_at_plan_time(tmp_path: Path):
    text = SPEC.replace("discarded = [4, 5]", "discarded = [11, 11]")
    (tmp_path / "spec.toml").write_text(text)
    plan = make_plan(load_spec(tmp_path / "spec.toml"))
    step = next(p for p in plan.steps if p.step.id == "model.single.train[split-0]")
    assert step.action == "!"
    assert step.reasons == [
        "models.single.slice.discarded: discarding 11 slice(s) at the beginning and 11 at the end of the "
        "22 slices of the axis leaves none; discard fewer"
    ]


EPOCHS = 2


def _body(workers: int) -> str:
    return (
        'task = "classification"\nmode = "slice"\n'
        'slice = { direction = 0, mode = "rgb", discarded = [3, 2] }\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss"] }}'
    )


def test_workers_and_resume_never_change_a_slice_training(tmp_path: Path, monkeypatch):
    import tests.training.test_workers_determinism as determinism

    monkeypatch.setattr(determinism, "EPOCHS", EPOCHS)
    path = write_spec(tmp_path, {"w0": _body(0), "w2": _body(2)}, subjects=6, batch_size=8)
    interrupted(path, "model.w0.train*", EPOCHS - 1)
    assert interrupted(path, "model.w2.train*", 0) == [False]  # stopped after epoch 1, with 2 workers
    assert interrupted(path, "model.w2.train*", EPOCHS - 1) == [True]  # resumed
    assert_same_training(tmp_path, "w0", "w2")


def test_a_2d_autoencoder_reconstructs_slices_folded_back_into_the_image(applied: Path):
    maps = MapsLayout(applied / "maps" / "ae")
    assert json.loads(maps.maps_json.read_text())["input_size"] == [1, 26, 22]
    x = torch.load(
        maps.tensors_dir(0, "loss", "recon") / "sub-0101_ses-M000_slice-2_input.pt", weights_only=True
    )
    y = torch.load(
        maps.tensors_dir(0, "loss", "recon") / "sub-0101_ses-M000_slice-2_output.pt", weights_only=True
    )
    assert x.shape == y.shape == (1, 26, 22)
    out = np.asarray(
        nib.load(str(maps.nifti_dir(0, "loss", "recon") / "sub-0101_ses-M000_image_output.nii.gz")).dataobj
    )
    assert out.shape == (21, 26, 22)
    np.testing.assert_allclose(out[2], y[0].numpy(), atol=1e-6)  # sagittal slice 2 at its place
    assert not out[[0, 1, 19, 20]].any()


def _clinicadl_slice_maps(root: Path, caps: Path) -> dict:
    """A MAPS as ClinicaDL 1.6.1 writes it for a coronal rgb slice model (Conv4_FC3, its own
    checkpoint format, validation slice-level predictions for soft voting); returns its state dict."""
    from neuroexec.nn.networks import build_network

    torch.manual_seed(3)
    net = build_network("Conv4_FC3", (3, 21, 22), output_size=2, dropout=0.5)
    with torch.no_grad():
        for module in net.convolutions:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    maps = MapsLayout(root)
    maps.best_dir(0, "loss").mkdir(parents=True)
    pre = {"preprocessing": "t1-linear", "mode": "slice", "use_uncropped_image": False, "prepare_dl": False,
           "slice_direction": 1, "slice_mode": "rgb", "discarded_slices": [6, 6]}  # fmt: skip
    config = {"architecture": "Conv4_FC3", "network_task": "classification", "mode": "slice",
              "multi_network": False, "input_size": [3, 21, 22], "label": "diagnosis",
              "label_code": {"AD": 0, "CN": 1}, "output_size": 2, "caps_directory": str(caps),
              "preprocessing_dict": pre, "selection_metrics": ["loss"], "normalize": True}  # fmt: skip
    maps.maps_json.write_text(json.dumps(config))
    state = net.state_dict()
    torch.save({"model": state, "epoch": 4, "name": "Conv4_FC3"}, maps.best_model(0, "loss"))
    rows = [
        (f"sub-{i:04d}", "ses-M000", k, i % 2, (i + k) % 2, 0.5, 0.5) for i in range(4) for k in range(6, 20)
    ]
    columns = [
        "participant_id",
        "session_id",
        "slice_id",
        "true_label",
        "predicted_label",
        "proba0",
        "proba1",
    ]
    validation = maps.prediction_tsv(0, "loss", "validation", "slice")
    validation.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=columns).to_csv(validation, sep="\t", index=False)
    return state


def test_a_clinicadl_slice_maps_predicts_what_its_network_computes(tmp_path: Path):
    from tests.nn.test_networks_2d import _reference_forward

    (tmp_path / "spec.toml").write_text(
        'version = 1\n[compute]\ndevice = "cpu"\nworkers = 0\nbatch_size = 8\n'
        '[datasets.other]\ncaps = "data/other"\n'
        "generate = { subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }\n"
        '[models.cdl]\nmaps = "cdl"\n'
        '[groups.test]\ndataset = "other"\nmodels = ["cdl"]\nskip_leak_check = true\n'
    )
    state = _clinicadl_slice_maps(tmp_path / "cdl", tmp_path / "elsewhere")
    run_apply(tmp_path / "spec.toml")
    maps = MapsLayout(tmp_path / "cdl")
    got = pd.read_csv(maps.prediction_tsv(0, "loss", "test", "slice"), sep="\t")
    assert len(got) == 4 * 14 and sorted(set(got["slice_id"])) == list(range(6, 20))
    volume = nib.load(str(CapsLayout(tmp_path / "data/other").t1_linear_nifti("sub-0101", "ses-M000")))
    volume = volume.get_fdata(dtype=np.float64)
    planes = np.stack([volume[:, k, :] for k in range(6, 20)])
    lo, hi = planes.min(axis=(1, 2), keepdims=True), planes.max(axis=(1, 2), keepdims=True)
    x = torch.from_numpy((planes - lo) / (hi - lo))[:, None].expand(-1, 3, -1, -1)  # ClinicaDL's rgb slices
    want = torch.softmax(_reference_forward(state, x, 5), dim=1).numpy()
    rows = got[got["participant_id"] == "sub-0101"].sort_values("slice_id")
    np.testing.assert_allclose(rows[["proba0", "proba1"]].to_numpy(), want, atol=1e-5)
    assert maps.prediction_tsv(0, "loss", "test", "image").is_file()


@pytest.mark.parametrize("discarded, refused", [("[7, 7]", True), ("[6, 7]", False)])
def test_the_slices_of_a_users_caps_are_counted_from_its_first_image(tmp_path: Path, discarded, refused):
    from tests.helpers import make_tiny_caps

    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    (tmp_path / "spec.toml").write_text(
        f'version = 1\n[datasets.mine]\ncaps = "{caps}"\nparticipants = "{tsv}"\n'
        '[models.m]\nmaps = "maps/m"\ndataset = "mine"\narchitecture = "TinyCNN"\nmode = "slice"\n'
        f'slice = {{ direction = 1, mode = "rgb", discarded = {discarded} }}\n'
    )
    plan = make_plan(load_spec(tmp_path / "spec.toml"))
    train = [p for p in plan.steps if p.step.kind == "train"]
    assert train and all((p.action == "!") == refused for p in train)
    if refused:
        assert "of the 14 slices of the axis leaves none" in train[0].reasons[0]


def test_a_deleted_bundle_plans_again_only_the_extraction_of_its_axis_and_channels(tmp_path: Path):
    (tmp_path / "spec.toml").write_text(SPEC)
    run_apply(tmp_path / "spec.toml", target="dataset.demo.extract*")
    caps = CapsLayout(tmp_path / "data/demo")
    caps.slice_bundle("sub-0001", "ses-M000", "axi", "single").unlink()
    plan = {p.step.id: p for p in make_plan(load_spec(tmp_path / "spec.toml")).steps}
    assert plan["dataset.demo.extract[slice-axi-single]"].action == "~"
    assert plan["dataset.demo.extract[slice-axi-rgb]"].action == "="
    assert plan["dataset.demo.extract[slice-sag-single]"].action == "="

"""Training through the real plan/apply path on tiny synthetic CAPS: outputs, tasks, modes, transfer."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.errors import InputError, UnsafeCheckpointError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.metrics import CLASSIFICATION_METRICS
from neuroexec.nn import build_autoencoder, build_network
from neuroexec.training import setup
from tests.training.training_specs import run_apply, train_task, write_spec

CLASSIFIER = 'task = "classification"\ntrain = { epochs = 3, learning_rate = 1e-3, selection_metrics = ["loss", "BA"] }'


def read_tsv(path):
    return pd.read_csv(path, sep="\t")


def test_classification_writes_every_clinicadl_output(tmp_path):
    path = write_spec(tmp_path, {"cnn": CLASSIFIER})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")

    info = read_maps_info(maps.root)
    raw = json.loads(maps.maps_json.read_text())
    assert info.task == "classification" and info.architecture == "TinyCNN" and info.mode == "image"
    assert info.label_code == {"AD": 0, "CN": 1} and info.output_size == 2
    assert info.input_size == (1, 21, 26, 22)  # the data's shape, not a constant
    assert raw["loss"] == "CrossEntropyLoss" and raw["n_splits"] == 2 and raw["split"] == [0]
    assert raw["preprocessing_dict"]["mode"] == "image" and "neuroexec_version" in raw
    assert "torch==" in maps.environment_txt.read_text()
    assert "Conv3d" in maps.information_log.read_text()

    log = read_tsv(maps.training_tsv(0))
    assert list(log["epoch"]) == [0, 1, 2] and list(log.columns[:3]) == ["epoch", "iteration", "time"]
    for metric in (*CLASSIFICATION_METRICS, "loss"):
        assert f"{metric}_train" in log.columns and f"{metric}_valid" in log.columns
    assert (log["loss_train"] > 0).all() and log["BA_valid"].between(0, 1).all()
    assert log["time"].is_monotonic_increasing
    assert any(maps.tensorboard_dir(0, "train").iterdir())
    assert any(maps.tensorboard_dir(0, "validation").iterdir())
    assert not maps.tmp_dir(0).exists()

    for metric in ("loss", "BA"):
        state, epoch, name = load_model_state(maps.best_model(0, metric))
        assert name == "TinyCNN" and 0 <= epoch <= 2 and "convolutions.0.weight" in state
        for group in ("train", "validation"):
            prediction = read_tsv(maps.prediction_tsv(0, metric, group, "image"))
            expected = ["participant_id", "session_id", "image_id", "true_label", "predicted_label"]
            assert list(prediction.columns) == [*expected, "proba0", "proba1"]
            assert np.allclose(prediction[["proba0", "proba1"]].sum(axis=1), 1.0)
            table = read_tsv(maps.metrics_tsv(0, metric, group, "image"))
            assert list(table["Metrics"]) == ["Values", "Lower bound CI", "Upper bound CI", "SE"]
            assert "BA" in table.columns and "loss" in table.columns
            assert maps.description_log(0, metric, group).is_file()
    # The best-loss model is the one with the lowest validation loss of training.tsv, and its
    # validation loss re-computed at the end is the logged one.
    _, epoch, _ = load_model_state(maps.best_model(0, "loss"))
    assert epoch == int(log["loss_valid"].idxmin())
    table = read_tsv(maps.metrics_tsv(0, "loss", "validation", "image"))
    assert table["loss"][0] == pytest.approx(log["loss_valid"].min(), rel=1e-5)


def test_regression_loss_goes_down(tmp_path):
    body = 'task = "regression"\nlabel = "age"\ntrain = { epochs = 4, learning_rate = 1e-2 }'
    path = write_spec(tmp_path, {"reg": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/reg")
    log = read_tsv(maps.training_tsv(0))
    assert log["loss_train"].iloc[-1] < log["loss_train"].iloc[0]
    assert {"MAE_valid", "RMSE_valid", "R2_score_valid"} <= set(log.columns)
    prediction = read_tsv(maps.prediction_tsv(0, "loss", "validation", "image"))
    assert list(prediction.columns[3:]) == ["true_label", "predicted_label"]
    assert read_maps_info(maps.root).output_size == 1


def test_reconstruction_trains_and_writes_visualisations(tmp_path):
    body = 'task = "reconstruction"\ntrain = { epochs = 3, learning_rate = 1e-2, visualization = true }'
    path = write_spec(tmp_path, {"ae": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/ae")
    log = read_tsv(maps.training_tsv(0))
    assert log["loss_train"].iloc[-1] < log["loss_train"].iloc[0]
    assert {"MAE_valid", "RMSE_valid", "PSNR_valid", "SSIM_valid"} <= set(log.columns)
    assert read_maps_info(maps.root).task == "reconstruction"
    assert json.loads(maps.maps_json.read_text())["architecture"] == "AE_TinyCNN"
    prediction = read_tsv(maps.prediction_tsv(0, "loss", "validation", "image"))
    assert list(prediction.columns[3:]) == ["MAE", "RMSE", "PSNR", "SSIM"]
    import nibabel as nib

    for phase in ("train", "validation"):
        folder = maps.reconstruction_dir(0, phase)
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{kind}-{k}.nii.gz" for kind in ("input", "output") for k in range(3)
        )
        image = nib.load(folder / "output-0.nii.gz")
        assert image.shape == (21, 26, 22)
        assert not np.allclose(image.affine, np.eye(4))  # the source NIfTI's affine (8 mm voxels)


def test_patch_mode_writes_patch_and_soft_voted_image_levels(tmp_path):
    body = (
        'task = "classification"\nmode = "patch"\npatch = { size = 12, stride = 10 }\n'
        "train = { epochs = 2, learning_rate = 1e-3 }"
    )
    path = write_spec(tmp_path, {"patch": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/patch")
    info = read_maps_info(maps.root)
    assert info.mode == "patch" and info.patch_size == 12 and info.input_size == (1, 12, 12, 12)
    patches = read_tsv(maps.prediction_tsv(0, "loss", "validation", "patch"))
    images = read_tsv(maps.prediction_tsv(0, "loss", "validation", "image"))
    n_patches = patches["patch_id"].nunique()
    grid = [(size - 12) // 10 + 1 for size in (21, 26, 22)]  # unfold(12, 10) per axis
    assert n_patches == np.prod(grid) and len(patches) == n_patches * len(images)
    # Image level = validation-accuracy-weighted average of the patch probabilities.
    correct = (patches["true_label"] == patches["predicted_label"]).groupby(patches["patch_id"]).mean()
    weights = correct / correct.sum()
    first = patches[patches["participant_id"] == images["participant_id"][0]]
    expected = (first["proba0"] * first["patch_id"].map(weights)).sum()
    assert images["proba0"][0] == pytest.approx(expected)
    for group in ("train", "validation"):
        for level in ("patch", "image"):
            assert maps.metrics_tsv(0, "loss", group, level).is_file()


def test_autoencoder_to_cnn_transfer_copies_the_encoder_exactly(tmp_path):
    source = build_autoencoder("TinyCNN", (1, 21, 26, 22))
    torch.nn.init.normal_(source.encoder[0].weight)  # make it differ from any fresh init
    file = tmp_path / "ae.pth.tar"
    torch.save({"model": source.state_dict(), "epoch": 0, "name": "AE_TinyCNN"}, file)
    target = build_network("TinyCNN", (1, 21, 26, 22), 2)
    before_fc = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("fc.")}
    copied = setup.transfer(target, file, None, is_autoencoder=False)
    state = target.state_dict()
    encoder = {k: v for k, v in source.state_dict().items() if k.startswith("encoder.")}
    assert sorted(copied) == sorted("convolutions." + k[len("encoder.") :] for k in encoder)
    for key, value in encoder.items():
        assert torch.equal(state["convolutions." + key[len("encoder.") :]], value)
    for key, value in before_fc.items():
        assert torch.equal(state[key], value)


def test_cnn_to_cnn_transfer_through_the_spec_copies_every_tensor(tmp_path):
    body = CLASSIFIER + '\ntransfer = { model = "src", selection = "loss" }'
    path = write_spec(tmp_path, {"src": CLASSIFIER, "dst": body})
    run_apply(path, target="model.src.train*")
    task = train_task(path, "dst")
    assert task.transfer_from == MapsLayout(tmp_path / "maps/src").best_model(0, "loss")
    source_state, _, _ = load_model_state(task.transfer_from)
    target = build_network("TinyCNN", (1, 21, 26, 22), 2)
    copied = setup.transfer(target, task.transfer_from, task.transfer_maps, is_autoencoder=False)
    assert sorted(copied) == sorted(source_state)
    for key, value in target.state_dict().items():
        assert torch.equal(value, source_state[key])
    run_apply(path)  # the dependent model trains from it
    assert MapsLayout(tmp_path / "maps/dst").best_model(0, "loss").is_file()


def test_transfer_source_with_a_pickled_object_is_refused(tmp_path):
    net = build_network("TinyCNN", (1, 21, 26, 22), 2)
    file = tmp_path / "evil.pth.tar"
    torch.save({"model": net.state_dict(), "epoch": 0, "args": argparse.Namespace(a=1)}, file)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.tar"):
        setup.transfer(build_network("TinyCNN", (1, 21, 26, 22), 2), file, None, False)


def test_missing_transfer_source_names_the_file(tmp_path):
    missing = tmp_path / "nowhere/model.pth.tar"
    with pytest.raises(InputError, match="nowhere/model.pth.tar"):
        setup.transfer(build_network("TinyCNN", (1, 21, 26, 22), 2), missing, None, False)


@pytest.mark.slow
def test_classification_beats_chance_on_synthetic_atrophy(tmp_path):
    body = (
        'task = "classification"\ndropout = 0.0\n'
        'train = { epochs = 12, learning_rate = 1e-3, selection_metrics = ["BA"] }'
    )
    path = write_spec(tmp_path, {"cnn": body}, subjects=16, batch_size=2)
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")
    table = read_tsv(maps.metrics_tsv(0, "BA", "validation", "image"))
    log = read_tsv(maps.training_tsv(0))
    assert table["BA"][0] >= 0.75  # 8 validation subjects, chance is 0.5
    assert log["loss_train"].iloc[-3:].mean() < log["loss_train"].iloc[:3].mean()


def test_final_results_equal_a_fresh_evaluation_of_each_best_model(tmp_path):
    """The end-of-training tables re-use the best epoch's validation pass: they must equal what the saved
    best model predicts when evaluated again."""
    from neuroexec.evaluation import predict_frames
    from neuroexec.steps.split import split_frames

    path = write_spec(tmp_path, {"cnn": CLASSIFIER})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")
    info = read_maps_info(maps.root)
    task = train_task(path, "cnn")
    for metric in ("loss", "BA"):
        net = build_network("TinyCNN", info.input_size, info.output_size)
        net.load_state_dict(load_model_state(maps.best_model(0, metric))[0])
        for group, frame in zip(("train", "validation"), split_frames(maps.root, 0)):
            data = setup.make_dataset(task.model, task.dataset, frame, info.label_code, False)
            fresh, loss = predict_frames(
                net, data, "classification", torch.device("cpu"), 4, 0, False, info.label_code
            )
            written = read_tsv(maps.prediction_tsv(0, metric, group, "image"))
            keys = ["participant_id", "session_id"]
            merged = written.merge(fresh, on=keys, suffixes=("", "_fresh"))
            assert len(merged) == len(fresh) == len(written)
            assert (merged["predicted_label"] == merged["predicted_label_fresh"]).all()
            np.testing.assert_allclose(merged["proba0"], merged["proba0_fresh"], rtol=1e-5, atol=1e-6)

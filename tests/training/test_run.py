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
    # The loss has no interval: ClinicaDL writes N/A there (and pandas reads it back as missing).
    lines = maps.metrics_tsv(0, "loss", "validation", "image").read_text().splitlines()
    at = lines[0].split("\t").index("loss")  # the last of ClinicaDL's columns; neuroexec's AUC follows
    assert [line.split("\t")[at] for line in lines] == ["loss", lines[1].split("\t")[at], "N/A", "N/A", "N/A"]
    assert lines[0].split("\t")[at + 1 :] == ["AUC"]


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
    # No classes: label_code is null, as ClinicaDL writes it (its predict reads {} as a label code)
    assert json.loads(maps.maps_json.read_text())["label_code"] is None


def test_reconstruction_trains_and_writes_visualisations(tmp_path):
    body = 'task = "reconstruction"\ntrain = { epochs = 3, learning_rate = 1e-2, visualization = true }'
    path = write_spec(tmp_path, {"ae": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/ae")
    log = read_tsv(maps.training_tsv(0))
    assert log["loss_train"].iloc[-1] < log["loss_train"].iloc[0]
    assert {"MAE_valid", "RMSE_valid", "PSNR_valid", "SSIM_valid"} <= set(log.columns)
    assert read_maps_info(maps.root).task == "reconstruction"
    parameters = json.loads(maps.maps_json.read_text())
    assert parameters["architecture"] == "AE_TinyCNN"
    # ClinicaDL's predict keeps only the maps.json diagnoses: an autoencoder's are its data's, never []
    assert parameters["diagnoses"] == ["AD", "CN"]
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
    # Bundles are neuroexec's own: ClinicaDL must cut the patches from the image tensors (prepare_dl false)
    assert info.raw["preprocessing_dict"]["prepare_dl"] is False
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
    from neuroexec.context import StepSettings
    from neuroexec.evaluation import predict_frames
    from neuroexec.training.task import split_frames

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
                net,
                data,
                "classification",
                StepSettings(torch.device("cpu"), "auto", False, 0, 4),
                info.label_code,
            )
            written = read_tsv(maps.prediction_tsv(0, metric, group, "image"))
            keys = ["participant_id", "session_id"]
            merged = written.merge(fresh, on=keys, suffixes=("", "_fresh"))
            assert len(merged) == len(fresh) == len(written)
            assert (merged["predicted_label"] == merged["predicted_label_fresh"]).all()
            np.testing.assert_allclose(merged["proba0"], merged["proba0_fresh"], rtol=1e-5, atol=1e-6)


# ClinicaDL 1.x maps.json keys, as FORMATS.md lists them.
MAPS_JSON_KEYS = """architecture multi_network dropout latent_space_size feature_size n_conv io_layer_channels
normalization selection_metrics label label_code selection_threshold loss gpu n_proc batch_size
evaluation_steps amp seed deterministic compensation transfer_path transfer_selection_metric
nb_unfrozen_layer multi_cohort diagnoses baseline normalize data_augmentation sampler size_reduction
n_splits optimizer epochs learning_rate weight_decay patience tolerance accumulation_steps network_task
caps_directory tsv_path preprocessing_dict mode split validation num_networks output_size
input_size""".split()


def test_maps_json_tensorboard_and_information_log_of_two_splits(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_spec(tmp_path, {"cnn": CLASSIFIER})
    path.write_text(path.read_text().replace("splits = [0]", "splits = [0, 1]"))
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")

    raw = json.loads(maps.maps_json.read_text())
    assert [key for key in MAPS_JSON_KEYS if key not in raw] == []
    assert raw["split"] == [0, 1] and raw["selection_metrics"] == ["loss", "BA"]
    assert raw["label_code"] == {"AD": 0, "CN": 1} and raw["network_task"] == "classification"
    assert raw["input_size"] == [1, 21, 26, 22] and raw["output_size"] == 2
    assert set(raw["preprocessing_dict"]) >= {"preprocessing", "mode", "use_uncropped_image", "file_type"}
    assert raw["preprocessing_dict"]["file_type"]["pattern"].endswith("_T1w.nii.gz")
    assert f"torch=={torch.__version__}" in maps.environment_txt.read_text().splitlines()

    # information.log: the architecture printout once, then the events of both splits in order.
    log = maps.information_log.read_text()
    modules = build_network("TinyCNN", (1, 21, 26, 22), 2).modules()
    n_conv = sum(isinstance(m, torch.nn.Conv3d) for m in modules)
    assert log.count("architecture: TinyCNN") == 1 and log.count("Conv3d(") == n_conv
    events = [line.split(" ", 2)[2] for line in log.splitlines() if line[:2] == "20" and "split-" in line]
    assert events == [
        "split-0: training started",
        "split-0: training finished after 3 epochs",
        "split-1: training started",
        "split-1: training finished after 3 epochs",
    ]

    for split in (0, 1):
        table = read_tsv(maps.training_tsv(split))
        n_batches = 2  # 6 training images in batches of 4
        assert list(table["iteration"]) == [n_batches - 1] * 3  # ClinicaDL: index of the last batch
        # The TensorBoard event files are readable and hold training.tsv's values per epoch, at
        # ClinicaDL's global step (batches since the start: iteration + epoch * batches per epoch).
        for phase, suffix in (("train", "_train"), ("validation", "_valid")):
            board = EventAccumulator(str(maps.tensorboard_dir(split, phase)))
            board.Reload()
            assert {"loss", "BA", "accuracy"} <= set(board.Tags()["scalars"])
            for metric in ("loss", "BA"):
                events = board.Scalars(metric)
                assert [e.step for e in events] == [1, 3, 5]
                np.testing.assert_allclose([e.value for e in events], table[metric + suffix], rtol=1e-6)


def test_early_stopping_ends_training_and_still_writes_results(tmp_path):
    # tolerance is relative (ClinicaDL): a validation loss must fall by half to count as progress.
    body = (
        'task = "classification"\ntrain = { epochs = 6, learning_rate = 1e-4, patience = 2, tolerance = 0.5 }'
    )
    path = write_spec(tmp_path, {"cnn": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")
    log = read_tsv(maps.training_tsv(0))
    assert list(log["epoch"]) == [0, 1, 2]  # epochs 1 and 2 did not halve epoch 0's loss
    assert (log["loss_valid"] > 0.5 * log["loss_valid"][0]).all()
    assert "training finished after 3 epochs (early stopping)" in maps.information_log.read_text()
    assert maps.metrics_tsv(0, "loss", "validation", "image").is_file()
    assert not maps.tmp_dir(0).exists()


def test_early_stop_rule():
    from neuroexec.training.epoch_rules import early_stop
    from neuroexec.training.resume import Progress

    def run(losses, patience, tolerance):
        progress = Progress()
        return [early_stop(progress, loss, patience, tolerance) for loss in losses]

    assert run([1.0, 0.95, 0.92, 0.91], 2, 0.1) == [False, False, True, True]  # needs < best * 0.9
    assert run([1.0, 0.89, 0.85, 0.79], 2, 0.1) == [False, False, False, False]  # 0.79 < 0.89 * 0.9
    assert run([1.0, 2.0, 0.5, 2.0, 2.0], 2, 0.0) == [False, False, False, False, True]  # counter resets
    assert run([1.0, float("nan")], 5, 0.0) == [False, True]  # NaN stops at once (ClinicaDL)
    assert run([1.0] * 10, 0, 0.0) == [False] * 10  # patience 0: never


def test_training_tsv_row_averages_per_class_metrics():
    from neuroexec.metrics import classification_metrics
    from neuroexec.training.epoch_rules import log_row

    y_true, y_pred = np.array([0, 1, 2, 1, 0, 2]), np.array([0, 1, 1, 1, 2, 2])
    values = {**classification_metrics(y_true, y_pred, 3), "loss": 0.7}
    row = log_row(4, 9, 12.34567, values, values)
    assert list(row)[:3] == ["epoch", "iteration", "time"] and row["time"] == 12.346
    sensitivities = [np.mean(y_pred[y_true == k] == k) for k in range(3)]  # recall of each class
    for suffix in ("_train", "_valid"):
        for metric in (*CLASSIFICATION_METRICS, "loss"):
            assert metric + suffix in row
        assert row["sensitivity" + suffix] == pytest.approx(np.mean(sensitivities))
        assert row["accuracy" + suffix] == pytest.approx(4 / 6)
    names = list(row)
    assert names.index("loss_train") < names.index("BA_valid")  # every _train column, then _valid


def test_maps_json_values_clinicadl_reads_literally(tmp_path):
    """ClinicaDL turns *_path keys into paths unless "" and filters predict data on `diagnoses`."""
    path = write_spec(tmp_path, {"cnn": CLASSIFIER.replace("epochs = 3", "epochs = 1")})
    run_apply(path)
    raw = json.loads(MapsLayout(tmp_path / "maps/cnn").maps_json.read_text())
    assert raw["transfer_path"] == ""
    assert raw["diagnoses"] == ["AD", "CN"]
    assert raw["tsv_path"] == str(tmp_path / "data/demo/participants.tsv")

"""multi_network = true: one network per patch, trained inside the split's train step, laid out and
ensembled as ClinicaDL 1.6.1 does; workers and an interruption never change the networks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.data.datasets import PatchDataset
from neuroexec.errors import StepFailed
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import build_network
from neuroexec.plan.graph import make_plan
from neuroexec.report import report
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV, INTERRUPT_NETWORK_ENV
from tests.training.training_specs import apply_with_torchrun, needs_torchrun, run_apply, write_spec

PATCHES = 4  # size 12, stride 10 on the 21 x 26 x 22 images at 8 mm: 1 x 2 x 2


def body(epochs: int = 1, workers: int = 0, multi: bool = True, patch: str = "size = 12, stride = 10") -> str:
    return (
        f'task = "classification"\nmode = "patch"\npatch = {{ {patch} }}\nmulti_network = {str(multi).lower()}\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {epochs}, learning_rate = 1e-3, selection_metrics = ["loss", "BA"] }}'
    )


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})


def published(maps: MapsLayout) -> dict[str, object]:
    """Every network's best models (state dicts) and training log (without the time column)."""
    found: dict[str, object] = {}
    for metric in ("loss", "BA"):
        for k, path in maps.best_network_models(0, metric):
            found[f"{metric}/{k}"] = load_model_state(path)[0]
    for k in range(PATCHES):
        found[f"log/{k}"] = read_tsv(maps.training_tsv(0, k)).drop(columns="time")
    return found


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) == 3 * PATCHES
    for name, value in a.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, b[name])
        else:
            for key, tensor in value.items():
                assert torch.equal(tensor, b[name][key]), (name, key)


def test_one_network_per_patch_laid_out_and_ensembled_as_clinicadl(tmp_path):
    path = write_spec(tmp_path, {"mn": body() + "\nselection_threshold = 0.4"})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/mn")
    parameters = json.loads(maps.maps_json.read_text())
    assert parameters["multi_network"] is True and parameters["num_networks"] == PATCHES
    assert parameters["selection_threshold"] == 0.4
    for metric in ("loss", "BA"):
        assert [k for k, _ in maps.best_network_models(0, metric)] == list(range(PATCHES))
        assert not maps.best_model(0, metric).exists()  # no single model.pth.tar
    for k in range(PATCHES):
        assert len(read_tsv(maps.training_tsv(0, k))) == 1
        assert any(maps.tensorboard_dir(0, "train", k).iterdir())
    assert not maps.training_tsv(0).exists() and not maps.tmp_dir(0).exists()
    states = [load_model_state(p)[0] for _, p in maps.best_network_models(0, "loss")]
    first_weight = next(iter(states[0]))
    assert not torch.equal(states[0][first_weight], states[1][first_weight])  # a seed stream each

    for group in ("train", "validation"):
        patches = read_tsv(maps.prediction_tsv(0, "loss", group, "patch"))
        images = read_tsv(maps.prediction_tsv(0, "loss", group, "image"))
        assert sorted(patches["patch_id"].unique()) == list(range(PATCHES))
        assert len(patches) == PATCHES * len(images)
        table = read_tsv(maps.metrics_tsv(0, "loss", group, "patch"))
        assert table["patch_id"].tolist() == list(range(PATCHES)) and "loss" in table.columns
        assert maps.metrics_tsv(0, "loss", group, "image").is_file()
    # Image level: soft vote of the networks' probabilities, weighted by validation accuracy per patch.
    validation = read_tsv(maps.prediction_tsv(0, "loss", "validation", "patch"))
    correct = (
        (validation["true_label"] == validation["predicted_label"]).groupby(validation["patch_id"]).mean()
    )
    correct[correct < 0.4] = 0.0  # selection_threshold
    weights = correct / correct.sum()
    train = read_tsv(maps.prediction_tsv(0, "loss", "train", "patch"))
    voted = read_tsv(maps.prediction_tsv(0, "loss", "train", "image"))
    first = train[train["participant_id"] == voted["participant_id"][0]]
    assert voted["proba1"][0] == pytest.approx((first["proba1"] * first["patch_id"].map(weights)).sum())

    # Each row is its own network's output on its own patch.
    row = validation[validation["patch_id"] == 2].iloc[0]
    frame = read_tsv(maps.split_group_tsv("validation", 0))
    frame = frame[frame["participant_id"] == row["participant_id"]]
    data = PatchDataset(frame, tmp_path / "data/demo", size=12, stride=10, patch_index=2, normalize=True)
    net = build_network("TinyCNN", (1, 12, 12, 12), 2)
    net.load_state_dict(load_model_state(maps.best_model(0, "loss", 2))[0])
    with torch.no_grad():
        proba = torch.softmax(net.eval()(data[0]["image"].unsqueeze(0)).double(), dim=1)[0]
    assert float(proba[1]) == pytest.approx(row["proba1"], abs=1e-6)


def test_workers_never_change_the_networks(tmp_path):
    path = write_spec(tmp_path, {"w0": body(workers=0), "w2": body(workers=2)})
    run_apply(path)
    assert_same(published(MapsLayout(tmp_path / "maps/w0")), published(MapsLayout(tmp_path / "maps/w2")))


def test_interrupted_in_network_1_then_resumed_gives_the_uninterrupted_networks(tmp_path):
    path = write_spec(tmp_path, {"a": body(epochs=2), "b": body(epochs=2)})
    run_apply(path, target="model.a.train*")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        mp.setenv(INTERRUPT_NETWORK_ENV, "1")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target="model.b.train*")
    b = MapsLayout(tmp_path / "maps/b")
    # Nothing of the half-trained split is published; network-0 waits in tmp/, network-1 is resumable.
    assert not b.maps_json.exists() and not b.best_dir(0, "loss").exists()
    assert b.staged_network_done(0, 0).is_file() and not b.staged_network_done(0, 1).exists()
    assert b.staged_best_model(0, "loss", 0).is_file() and b.staged_best_model(0, "loss", 1).is_file()
    step = next(p for p in make_plan(load_spec(path)).steps if p.step.id == "model.b.train[split-0]")
    assert step.reasons == ["interrupted in network-1 after epoch 1 of 2: apply resumes there"]
    assert "a training stopped after 1 epoch of network-1 waits in" in report(load_spec(path))
    run_apply(path)
    assert f"split-0: {PATCHES} networks, up to 2 epochs, training logs" in report(load_spec(path))
    log = b.information_log.read_text()
    assert log.count("network-0: training started") == 1  # not trained again
    assert "network-1: training resumed after epoch 0" in log
    assert_same(published(MapsLayout(tmp_path / "maps/a")), published(b))
    for group in ("train", "validation"):
        for level in ("patch", "image"):
            pd.testing.assert_frame_equal(
                read_tsv(MapsLayout(tmp_path / "maps/a").prediction_tsv(0, "loss", group, level)),
                read_tsv(b.prediction_tsv(0, "loss", group, level)),
            )


def test_a_single_patch_per_image_is_refused(tmp_path):
    # by the plan, before any step runs (the images' shape is known): the train step is `!`, naming the key
    path = write_spec(tmp_path, {"one": body(patch="size = 16, stride = 16")})
    refused = [p for p in make_plan(load_spec(path)).steps if p.action == "!"]
    assert refused and all(p.step.kind == "train" for p in refused)
    assert "models.one.multi_network: one network per patch needs 2 patches or more" in refused[0].reasons[0]


def test_switching_to_multi_network_retrains_and_removes_the_single_model(tmp_path):
    path = write_spec(tmp_path, {"m": body(multi=False)})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/m")
    assert maps.best_model(0, "loss").is_file() and maps.training_tsv(0).is_file()
    path.write_text(path.read_text().replace("multi_network = false", "multi_network = true"))
    step = next(p for p in make_plan(load_spec(path)).steps if p.step.id == "model.m.train[split-0]")
    assert step.action != "="
    run_apply(path)
    assert not maps.best_model(0, "loss").exists() and not maps.training_tsv(0).exists()
    assert not maps.tensorboard_dir(0, "train").parent.exists()
    assert [k for k, _ in maps.best_network_models(0, "loss")] == list(range(PATCHES))
    assert np.isclose(
        read_tsv(maps.prediction_tsv(0, "loss", "validation", "image"))[["proba0", "proba1"]].sum(axis=1), 1
    ).all()


@pytest.mark.parametrize(
    "mode, settings, ids",
    [
        ("roi", 'roi = { list = ["leftHippocampus", "rightHippocampus"], uncropped = true }', [0, 1]),
        # ClinicaDL's slice_id: the absolute index, discarded[0] + k
        ("slice", 'slice = { direction = 2, mode = "single", discarded = [8, 11] }', [8, 9, 10]),
    ],
)
def test_regions_and_slices_get_one_network_each(tmp_path, mode, settings, ids):
    text = (
        f'task = "classification"\nmode = "{mode}"\n{settings}\nmulti_network = true\n'
        'train = { epochs = 1, learning_rate = 1e-3, selection_metrics = ["loss"] }'
    )
    path = write_spec(tmp_path, {"m": text})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/m")
    assert json.loads(maps.maps_json.read_text())["num_networks"] == len(ids)
    assert [k for k, _ in maps.best_network_models(0, "loss")] == list(range(len(ids)))
    rows = read_tsv(maps.prediction_tsv(0, "loss", "validation", mode))
    assert sorted(rows[f"{mode}_id"].unique()) == ids
    table = read_tsv(maps.metrics_tsv(0, "loss", "validation", mode))
    assert table[f"{mode}_id"].tolist() == ids and table["loss"].notna().all()  # each network's own loss
    assert maps.prediction_tsv(0, "loss", "validation", "image").is_file()


def test_regions_of_different_boxes_get_a_network_each_and_predict(tmp_path):
    import nibabel as nib

    from neuroexec.data.caps import ROI_MASK_PATTERNS, ROI_TEMPLATES, CapsLayout

    text = (
        'task = "classification"\nmode = "roi"\nroi = { list = ["boxA", "boxB"] }\nmulti_network = true\n'
        'train = { epochs = 1, learning_rate = 1e-3, selection_metrics = ["loss"] }\n'
    )
    path = write_spec(tmp_path, {"m": text})
    run_apply(path, target="dataset.demo.generate")
    caps = CapsLayout(tmp_path / "data/demo")
    template, pattern = ROI_TEMPLATES["t1-linear"], ROI_MASK_PATTERNS["t1-linear"]
    reference = nib.load(next((tmp_path / "data/demo").rglob("*_T1w.nii.gz")))
    for name, box in (
        ("boxA", (slice(2, 10), slice(4, 12), slice(3, 11))),
        ("boxB", (slice(8, 18), slice(6, 14), slice(5, 12))),
    ):
        mask = np.zeros(reference.shape, dtype=np.uint8)
        mask[box] = 1
        folder = caps.roi_masks_dir(template)
        folder.mkdir(parents=True, exist_ok=True)
        nib.save(
            nib.Nifti1Image(mask, reference.affine),
            folder / caps.roi_mask_name(template, pattern, name, True),
        )
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/m")
    assert json.loads(maps.maps_json.read_text())["input_size"] == [1, 8, 8, 8]  # network 0's box
    assert [k for k, _ in maps.best_network_models(0, "loss")] == [0, 1]
    trained = read_tsv(maps.prediction_tsv(0, "loss", "validation", "roi"))
    # The MAPS used as is predicts its validation group again: network 1 is rebuilt for its own box.
    copy = MapsLayout(tmp_path / "copy")
    shutil.copytree(maps.root, copy.root, ignore=shutil.ignore_patterns(".neuroexec"))
    shutil.rmtree(copy.result_dir(0, "loss", "validation"))
    other = tmp_path / "other.toml"
    other.write_text(
        f'version = 1\n[models.m]\nmaps = "{copy.root}"\n[groups.validation]\nfrom_training = "validation"\nmodels = ["m"]\n'
    )
    assert "group.validation.predict[m/split-0/best-loss]" in run_apply(other).ran
    pd.testing.assert_frame_equal(read_tsv(copy.prediction_tsv(0, "loss", "validation", "roi")), trained)


@needs_torchrun
def test_two_cpu_processes_train_the_networks_of_one_process(tmp_path):
    # As tests/training/test_ddp.py: batch size 1, one optimizer step per epoch over the 6 training
    # images (1 process: 6 accumulated batches; 2 processes: 3 each), SGD, no dropout.
    train = 'train = {{ epochs = 1, learning_rate = 0.05, optimizer = "SGD", weight_decay = 0.0, accumulation_steps = {} }}'
    text = 'task = "classification"\ndropout = 0.0\nmode = "patch"\npatch = { size = 16, stride = 10 }\n'  # 2 patches
    text += "multi_network = true\n"
    specs = {"one": text + train.format(6), "two": text + train.format(3)}
    path = write_spec(tmp_path, specs, subjects=12, batch_size=1)
    run_apply(path, target="model.one.train*")
    run_apply(path, target="model.two.split")
    apply_with_torchrun(path, "model.two.train*")
    one, two = MapsLayout(tmp_path / "maps/one"), MapsLayout(tmp_path / "maps/two")
    assert [k for k, _ in two.best_network_models(0, "loss")] == [0, 1]
    for (_, a), (_, b) in zip(one.best_network_models(0, "loss"), two.best_network_models(0, "loss")):
        state_one, state_two = load_model_state(a)[0], load_model_state(b)[0]
        # parameters only: batch-norm running statistics are rank 0's 3 images (as in test_ddp.py)
        for name, value in (
            (n, v) for n, v in state_one.items() if "running_" not in n and "num_batches" not in n
        ):
            assert torch.allclose(state_two[name].float(), value.float(), rtol=1e-4, atol=1e-6), (
                b.name,
                name,
            )
    assert read_tsv(two.metrics_tsv(0, "loss", "validation", "patch"))["patch_id"].tolist() == [0, 1]
    assert not two.tmp_dir(0).exists()


def test_the_training_fingerprint_covers_multi_network_and_the_part_settings(tmp_path):
    from neuroexec.training.task import training_config

    def config(text: str) -> dict:
        path = write_spec(tmp_path, {"m": text})
        return training_config(load_spec(path).models["m"])

    single = config(body(multi=False))
    assert (
        "multi_network" not in single and "slice" not in single and "roi" not in single
    )  # recorded as before
    assert config(body())["multi_network"] is True
    assert config(body() + "\nselection_threshold = 0.3")["selection_threshold"] == 0.3
    slices = 'task = "classification"\nmode = "slice"\nslice = {{ direction = 2, discarded = {} }}'
    assert config(slices.format("[2, 3]")) != config(slices.format("[2, 4]"))  # no extract id names it


def test_network_k_transfers_from_network_k_of_a_multi_network_source(tmp_path, monkeypatch):
    from neuroexec.training import setup

    target = body().replace("multi_network = true\n", 'multi_network = true\ntransfer = { model = "src" }\n')
    path = write_spec(tmp_path, {"src": body(), "dst": target})
    sources, real = [], setup.transfer
    monkeypatch.setattr(
        setup, "transfer", lambda net, source, *rest: sources.append(source) or real(net, source, *rest)
    )
    run_apply(path)
    src = MapsLayout(tmp_path / "maps/src")
    assert sources == [src.best_model(0, "loss", k) for k in range(PATCHES)]
    assert [k for k, _ in MapsLayout(tmp_path / "maps/dst").best_network_models(0, "loss")] == list(
        range(PATCHES)
    )


def test_a_damaged_interrupted_network_stops_apply_instead_of_starting_over(tmp_path):
    path = write_spec(tmp_path, {"b": body(epochs=2)})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        mp.setenv(INTERRUPT_NETWORK_ENV, "1")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path)
    b = MapsLayout(tmp_path / "maps/b")
    state = b.resume_state(0, 1)  # network-1's own (networks may train side by side)
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(StepFailed, match="cannot be resumed: resume.pth.tar is unreadable"):
        run_apply(path)
    assert b.staged_network_done(0, 0).is_file()  # network-0 is kept

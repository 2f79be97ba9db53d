"""train.data_augmentation (neuroexec/data/augmentation.py): ClinicaDL's ten transforms change the
training items only, their draws are a function of (seed, epoch, item index) alone, and a training
with them is bit-identical whatever compute.workers and after an interruption and a resume."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from neuroexec.data import augmentation
from neuroexec.data.augmentation import (
    AUGMENTATIONS,
    TORCHIO,
    Augmentation,
    AugmentedDataset,
    crop_pad,
    erase,
    gaussian_smooth,
    with_augmentation,
)
from neuroexec.data.datasets import ImageDataset, PatchDataset
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.errors import NeuroexecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.spec import load_spec
from neuroexec.training.task import training_config
from tests.training.test_workers_determinism import EPOCHS, assert_same_training, interrupted
from tests.training.training_specs import run_apply, train_task, write_spec

torchio = pytest.importorskip("torchio")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two tiny synthetic images (21 x 26 x 22), extracted and normalised."""
    data = generate_atrophy_dataset(tmp_path_factory.mktemp("aug") / "d", subjects=2, resolution_mm=8.0)
    frame = load_participants(data.participants_tsv)
    run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    run_extraction(plan_extraction(frame, data.caps_dir, ExtractionMode.patch(16, 8)), normalize=True)
    return frame, data.caps_dir


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_transform_changes_training_items_and_leaves_the_dataset_alone(images, name):
    frame, caps = images
    plain = ImageDataset(frame, caps, "diagnosis", {"AD": 0, "CN": 1})
    before = plain[0]["image"].clone()
    augmented = with_augmentation(plain, (name,), seed=0)
    changed = []
    for epoch in range(4):  # Erasing acts on half of the draws
        augmented.set_epoch(epoch)
        item = augmented[0]
        assert item["image"].shape == before.shape and item["image"].dtype == torch.float32
        changed.append(not torch.equal(item["image"], before))
    assert any(changed)
    assert torch.equal(plain[0]["image"], before)  # the dataset (validation, final results) unchanged
    assert augmented.input_size == plain.input_size and augmented.mode == "image"


def test_without_augmentation_the_dataset_is_used_as_it_is(images):
    plain = ImageDataset(*images)
    assert with_augmentation(plain, (), seed=0) is plain


def test_same_seed_epoch_and_index_give_the_same_draws_others_do_not():
    image = torch.rand(1, 16, 17, 15)
    names = ("Noise", "Erasing", "CropPad", "Smoothing", "Motion", "RandomSwap")
    augment = Augmentation(names, seed=4)
    first = augment(image, 2, 5)
    torch.manual_seed(123)  # the process's RNG plays no part ...
    assert torch.equal(augment(image, 2, 5), first)
    state = torch.get_rng_state()
    augment(image, 2, 5)
    assert torch.equal(torch.get_rng_state(), state)  # ... and is left as it was
    for other in (augment(image, 3, 5), augment(image, 2, 6), Augmentation(names, seed=5)(image, 2, 5)):
        assert not torch.equal(other, first)


def test_batches_fetched_at_once_are_augmented_row_by_row_as_single_items(images):
    frame, caps = images
    patches = AugmentedDataset(PatchDataset(frame, caps, size=16, stride=8), Augmentation(("Noise",), 1))
    patches.set_epoch(1)
    batch = patches.__getitems__([3, 0, 2])
    for row, i in enumerate([3, 0, 2]):
        assert torch.equal(batch["image"][row], patches[i]["image"])
    assert batch["mode_id"].tolist() == [1, 0, 0]


def test_the_epoch_reaches_workers_kept_alive():
    items = [{"image": torch.zeros(1, 6, 6, 6), "label": 0}] * 4
    data = AugmentedDataset(items, Augmentation(("Noise",), 0))
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=1, persistent_workers=True)
    for epoch in range(2):
        data.set_epoch(epoch)
        images = torch.cat([b["image"] for b in loader])
        data_images = torch.stack([data[i]["image"] for i in range(4)])  # drawn in this process
        assert torch.equal(images, data_images)


def test_the_deterministic_parts_do_what_clinicadl_does():
    image = torch.arange(24.0).reshape(1, 2, 3, 4)
    shifted = crop_pad(image, [1, -1, 0])  # +1 on the last axis, -1 on the middle one
    assert torch.equal(shifted[0, :, 1:, :3], image[0, :, :2, 1:])
    assert float(shifted[0, :, 0].abs().sum()) == 0 and float(shifted[0, :, :, 3].abs().sum()) == 0
    erased = erase(image, 1, 0, 2, 3)
    assert float(erased[..., 1:3, 0:3].abs().sum()) == 0 and torch.equal(erased[..., 0, :], image[..., 0, :])
    flat = gaussian_smooth(torch.ones(1, 5, 6, 7), 0.8)
    assert torch.allclose(flat, torch.ones(1, 5, 6, 7))
    spike = torch.zeros(1, 9, 9, 9)
    spike[0, 4, 4, 4] = 1
    smooth = gaussian_smooth(spike, 1.0)
    assert smooth[0, 4, 4, 4] < 1 and smooth[0, 3, 4, 4] == smooth[0, 5, 4, 4] > 0


def test_torchio_transforms_refuse_2d_items_and_unknown_names_are_refused():
    with pytest.raises(Exception, match="volumes"):
        Augmentation(("RandomBlur",), 0)(torch.rand(1, 8, 8), 0, 0)
    with pytest.raises(Exception, match="unknown 'Flip'"):
        Augmentation(("Flip",), 0)


def test_a_missing_torchio_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torchio", None)
    with pytest.raises(Exception, match=r"neuroexec\[augmentation\]"):
        augmentation.torchio_transform(TORCHIO[0])


# --- trainings -------------------------------------------------------------------------------------
AUGMENT = '["Noise", "Erasing", "CropPad", "Smoothing", "Motion", "RandomSwap"]'


def body(workers: int, augment: str | None = AUGMENT) -> str:
    extra = f", data_augmentation = {augment}" if augment else ""
    return (
        'task = "classification"\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss"]{extra} }}'
    )


def test_augmented_trainings_are_the_same_with_0_and_2_workers(tmp_path):
    # (test_only_the_training_items_are_augmented shows that a training does augment its items)
    path = write_spec(tmp_path, {"w0": body(0), "w2": body(2)}, subjects=8, batch_size=2)
    for name in ("w0", "w2"):
        interrupted(path, f"model.{name}.train*", EPOCHS - 1)
    assert_same_training(tmp_path, "w0", "w2")


def test_an_augmented_training_resumes_bit_identically(tmp_path):
    path = write_spec(tmp_path, {"w0": body(0), "w2": body(2)}, subjects=8, batch_size=2)
    interrupted(path, "model.w0.train*", EPOCHS - 1)
    assert interrupted(path, "model.w2.train*", 0) == [False]
    assert interrupted(path, "model.w2.train*", EPOCHS - 1) == [True]
    assert_same_training(tmp_path, "w0", "w2")


def test_only_the_training_items_are_augmented(tmp_path, monkeypatch):
    # one call per training item and epoch: none for validation, nor for the final train results
    calls = []
    real = Augmentation.__call__
    monkeypatch.setattr(Augmentation, "__call__", lambda self, *a: calls.append(a[1:]) or real(self, *a))
    path = write_spec(tmp_path, {"m": body(0, '["Noise"]')}, subjects=8, batch_size=2)

    run_apply(path, target="model.m.train*")
    n_train = len(train_task(path, "m").split_frames()[0])
    assert sorted(calls) == sorted((e, i) for e in range(EPOCHS) for i in range(n_train))


def test_data_augmentation_enters_the_training_fingerprint_only_when_set(tmp_path):
    path = write_spec(tmp_path, {"a": body(0), "b": body(0, None)})
    models = load_spec(path).models
    assert "data_augmentation" not in training_config(models["b"])["train"]
    assert training_config(models["a"])["train"]["data_augmentation"] == list(eval(AUGMENT))


# --- plan-time refusals ------------------------------------------------------------------------------
def test_the_plan_refuses_torchio_transforms_on_slices_and_swaps_larger_than_the_items(tmp_path):
    slices = 'mode = "slice"\nslice = { direction = 1 }\n' + body(0, '["Noise", "Motion"]')
    path = write_spec(tmp_path, {"slices": slices}, subjects=4)
    with pytest.raises(NeuroexecError, match=r"models\.slices\.train\.data_augmentation: Motion .*2D slices"):
        run_apply(path)
    patches = 'mode = "patch"\npatch = { size = 12, stride = 12 }\n' + body(0, '["RandomSwap"]')
    path = write_spec(tmp_path, {"patches": patches}, subjects=4)
    with pytest.raises(
        NeuroexecError, match=r"models\.patches\.train\.data_augmentation: RandomSwap .*12 x 12 x 12"
    ):
        run_apply(path)


def test_the_plan_names_the_extra_when_torchio_is_missing(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchio" else real(name, *a)
    )
    path = write_spec(tmp_path, {"m": body(0, '["BiasField"]')}, subjects=4)
    with pytest.raises(NeuroexecError, match=r"data_augmentation: BiasField .*neuroexec\[augmentation\]"):
        run_apply(path)

"""train.sampler = "weighted": ClinicaDL's class-balancing draw (weight 1 / count of the image's class,
with replacement, as many items as there are), seeded by compute.seed and the epoch, so trainings with
0 and 2 workers and an interrupted one give the same model; under DDP the ranks share one draw; refused
outside classification."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.data.augmentation import stream_seed
from neuroexec.errors import SpecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import build_network
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute, Model, Train
from neuroexec.training import loop
from neuroexec.training.loop import Trainer
from neuroexec.training.resume import seed_everything
from neuroexec.training.sampling import WeightedSampler, class_weights, weighted_sampler
from neuroexec.training.task import training_config
from tests.training.test_workers_determinism import assert_same_training, interrupted
from tests.training.training_specs import needs_torchrun, write_spec

EPOCHS = 3  # as test_workers_determinism's assert_same_training expects


class Labelled(torch.utils.data.Dataset):
    """Items of `labels` (one per image), `parts` items per image, as neuroexec's datasets order them."""

    def __init__(self, labels: list[int], parts: int = 1):
        self.labels, self.parts = [torch.tensor(v) for v in labels], parts

    def __len__(self):
        return len(self.labels) * self.parts

    def __getitem__(self, i):
        return {"image": torch.zeros(1, 3, 3, 3), "label": self.labels[i // self.parts],
                "participant_id": f"sub-{i:03d}", "session_id": "ses-M000", "mode_id": i % self.parts}  # fmt: skip


def test_the_draw_balances_the_classes():
    labels = [0] * 90 + [1] * 10
    weights = class_weights(labels)
    assert weights[0] == pytest.approx(1 / 90) and weights[-1] == pytest.approx(1 / 10)
    sampler = WeightedSampler(weights, seed=0)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        epoch_items = list(sampler)
        assert len(epoch_items) == 100  # as many as there are, with replacement
        drawn += epoch_items
    share = sum(labels[i] for i in drawn) / len(drawn)
    assert 0.45 < share < 0.55  # 10% of the items, about half of the draws


def test_every_part_of_an_image_weighs_as_its_image():
    sampler = weighted_sampler(Labelled([0, 0, 1], parts=2), seed=0)
    assert sampler.weights.tolist() == [0.5, 0.5, 0.5, 0.5, 1.0, 1.0]


def test_the_draw_depends_on_the_seed_and_the_epoch_only():
    weights = class_weights([0, 0, 0, 1, 1, 2] * 5)
    first, again, other_seed = (
        WeightedSampler(weights, 3),
        WeightedSampler(weights, 3),
        WeightedSampler(weights, 4),
    )
    torch.manual_seed(123)  # the global RNG plays no part
    first.set_epoch(2)
    torch.manual_seed(456)
    again.set_epoch(2)
    other_seed.set_epoch(2)
    assert list(first) == list(again) == list(first)
    assert list(first) != list(other_seed)
    again.set_epoch(3)
    assert list(first) != list(again)


def test_seeds_and_epochs_of_one_sum_draw_differently():
    """seed + epoch made (seed 1, epoch 0) and (seed 0, epoch 1) draw the same items."""
    weights = class_weights([0, 0, 0, 1, 1, 2] * 5)
    draws = []
    for seed, epoch in ((1, 0), (0, 1), (3, 2), (2, 3)):
        sampler = WeightedSampler(weights, seed)
        sampler.set_epoch(epoch)
        draws.append(list(sampler))
    assert draws[0] != draws[1] and draws[2] != draws[3]


def test_ranks_take_their_share_of_one_draw():
    weights = class_weights([0] * 7 + [1] * 4)  # 11 items
    alone = WeightedSampler(weights, seed=1, num_replicas=1)
    ranks = [WeightedSampler(weights, seed=1, num_replicas=3, rank=r) for r in range(3)]
    for sampler in (alone, *ranks):
        sampler.set_epoch(5)
    shards = [list(s) for s in ranks]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to a multiple of the ranks: as many steps
    merged = [shard[k] for k in range(4) for shard in shards]
    generator = torch.Generator().manual_seed(stream_seed(1, 5))
    assert merged == torch.multinomial(weights, 12, replacement=True, generator=generator).tolist()
    assert len(list(alone)) == 11


def test_the_trainer_draws_the_training_items_only_by_weight():
    compute = Compute(device="cpu", workers=0, batch_size=2, seed=0)
    ctx = RunContext(reporter=Reporter(quiet=True))
    net = torch.nn.Linear(1, 1)
    t = Trainer(
        net,
        torch.optim.SGD(net.parameters()),
        "classification",
        "image",
        compute,
        1,
        ctx,
        sampling="weighted",
    )
    data = Labelled([0, 0, 0, 1])
    assert isinstance(t.sampler(data, shuffle=True), WeightedSampler)
    validation = t.sampler(data, shuffle=False)  # validation reads every item once
    assert not isinstance(validation, WeightedSampler) and sorted(validation) == [0, 1, 2, 3]


def body(workers: int) -> str:
    return (
        'task = "classification"\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss"], sampler = "weighted" }}'
    )


def test_weighted_trainings_with_workers_and_after_a_resume_give_the_same_model(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(loop, "weighted_sampler", lambda *a: made.append(weighted_sampler(*a)) or made[-1])
    path = write_spec(tmp_path, {"w0": body(0), "w2": body(2)}, subjects=8, batch_size=2)
    interrupted(path, "model.w0.train*", EPOCHS - 1)
    assert len(made) == 1 and len(made[0]) == len(made[0].weights)  # the training loader's, alone
    assert interrupted(path, "model.w2.train*", 0) == [False]
    assert interrupted(path, "model.w2.train*", EPOCHS - 1) == [True]
    assert_same_training(tmp_path, "w0", "w2")


@pytest.mark.parametrize("task", ['task = "regression"\nlabel = "age"', 'task = "reconstruction"'])
def test_the_weighted_sampler_is_refused_outside_classification(tmp_path, task):
    path = write_spec(tmp_path, {"m": f'{task}\ntrain = {{ sampler = "weighted" }}'})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [p.key for p in info.value.problems] == ["models.m.train.sampler"]


def test_the_sampler_enters_the_fingerprint_only_when_weighted():
    assert "sampler" not in training_config(Model("m", Path("maps"), "d"))["train"]
    weighted = Model("m", Path("maps"), "d", train=Train(sampler="weighted"))
    assert training_config(weighted)["train"]["sampler"] == "weighted"


@needs_torchrun
def test_two_ddp_processes_draw_the_items_of_one(ddp_project):
    # As tests/training/test_ddp.py (tests/training/conftest.py, models weighted_one and weighted_two): one
    # optimizer step per epoch over the whole draw (1 process: 6 accumulated batches of 1; 2 processes: 3
    # each, averaged by DDP), SGD, no dropout. The ranks' shares of the one weighted draw make the same
    # step as the single process's draw, to float rounding.
    one, two = (MapsLayout(ddp_project.root / f"maps/weighted_{n}") for n in ("one", "two"))
    state_one, _, _ = load_model_state(one.best_model(0, "loss"))
    state_two, _, _ = load_model_state(two.best_model(0, "loss"))
    seed_everything(0)  # training seeds then builds: these are the initial weights
    initial = build_network("TinyCNN", (1, 21, 26, 22), 2, dropout=0.0)
    moved = 0
    for name, start in initial.named_parameters():
        step = float((state_one[name] - start.detach()).abs().max())
        moved += step > 1e-4
        assert torch.allclose(state_two[name], state_one[name], rtol=0, atol=1e-3 * step + 1e-7), name
    assert moved >= 10

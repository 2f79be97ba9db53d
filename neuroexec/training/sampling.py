"""`train.sampler = "weighted"`: ClinicaDL's weighted sampler of a classification training.

ClinicaDL gives each item the weight 1 / (number of training images of its label), every part of an
image its image's, and draws as many items as there are, with replacement (a WeightedRandomSampler), so
that each class is drawn about as often. Here the draw comes from a generator seeded from the pair
(compute.seed, epoch) (data/augmentation.stream_seed: no two pairs share a draw), in the main process:
the same items whatever the worker count and after a resume. Under DDP one draw is made for all ranks and rank r takes every
world-th item from r (ClinicaDL's ranks draw apart, each about its share); the draw is padded to a
multiple of the ranks, so that every rank makes as many steps.

ClinicaDL's weighted sampler of a regression fails (its bin counts leave infinite weights) and it has
none for reconstruction: the spec's check refuses both (spec/checks.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from neuroexec.data.augmentation import stream_seed


def class_weights(labels: Sequence[int], parts_per_image: int = 1) -> torch.Tensor:
    """Each item's weight: 1 / the count of its image's label among the images, for each of the
    `parts_per_image` items of an image (items of image i are i * parts ... (i + 1) * parts - 1).

    >>> class_weights([0, 0, 0, 1]).tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0]
    >>> class_weights([0, 1, 1], parts_per_image=2).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    """
    counts = Counter(int(label) for label in labels)
    per_image = torch.tensor([1.0 / counts[int(label)] for label in labels], dtype=torch.float64)
    return per_image.repeat_interleave(parts_per_image)


class WeightedSampler(Sampler[int]):
    """Items drawn with replacement in proportion to `weights`, seeded by `seed` and the epoch
    (`set_epoch`, as DistributedSampler); `rank` of `num_replicas` takes its share of one draw.

    >>> sampler = WeightedSampler(class_weights([0, 0, 0, 1]), seed=0)
    >>> sampler.set_epoch(3)
    >>> len(list(sampler)), list(sampler) == list(sampler)
    (4, True)
    """

    def __init__(self, weights: torch.Tensor, seed: int, num_replicas: int = 1, rank: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.seed, self.num_replicas, self.rank = seed, max(1, num_replicas), rank
        self.epoch = 0
        self.num_samples = math.ceil(len(self.weights) / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch))
        total = self.num_samples * self.num_replicas
        drawn = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(drawn[self.rank : total : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def weighted_sampler(dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> WeightedSampler:
    """The weighted sampler of a classification dataset (neuroexec.data's: `labels` holds each
    image's class index, `len(dataset)` its items, the parts of its images)."""
    labels = [int(label) for label in dataset.labels]
    weights = class_weights(labels, len(dataset) // max(1, len(labels)))
    return WeightedSampler(weights, seed, num_replicas, rank)

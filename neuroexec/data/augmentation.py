"""ClinicaDL's `data_augmentation` of the training items (`train.data_augmentation` in the spec).

ClinicaDL 1.6.1 applies its augmentations, in the order listed, to each training item after loading
(and normalising) it: the whole image in image mode, each patch, region or slice in the other modes;
validation and prediction items are never augmented. The ten names and their settings are ClinicaDL's:

    Noise       Gaussian noise of a standard deviation drawn in [0, 0.1)
    Erasing     torchvision's RandomErasing(): p = 0.5, a box of 2-33 % of the last two axes set to 0
    CropPad     a shift of [-10, 10) voxels along each spatial axis (crop on one side, zeros on the other)
    Smoothing   scipy's gaussian_filter of a sigma drawn in [0, 1), on every axis
    Motion      TorchIO RandomMotion(degrees=(2, 4), translation=(2, 4), num_transforms=2)
    Ghosting    TorchIO RandomGhosting(num_ghosts=(4, 10))
    Spike       TorchIO RandomSpike(num_spikes=1, intensity=(1, 3))
    BiasField   TorchIO RandomBiasField(coefficients=0.5)
    RandomBlur  TorchIO RandomBlur(std=(0, 2))
    RandomSwap  TorchIO RandomSwap(patch_size=15, num_iterations=100)

The first four are written here (same draws in the same order as ClinicaDL's classes, from torch's
RNG); the TorchIO ones are TorchIO's own (`pip install neuroexec[augmentation]`), which ClinicaDL
only applies to volumes [C, X, Y, Z].

Unlike ClinicaDL, whose draws come from the global RNGs of its loader's workers, every draw of an
item comes from torch's RNG seeded with (compute.seed, epoch, item index) for that item only
(`item_seed`; the process's RNG is restored after it), so that a training gives the same model
whatever the number of workers and after a resume. The epoch reaches the workers through a tensor in
shared memory (`AugmentedDataset.set_epoch`, called by the trainer before each epoch's first batch).

    >>> augment = Augmentation(("Noise", "CropPad"), seed=0)
    >>> image = torch.rand(1, 8, 8, 8)
    >>> torch.equal(augment(image, epoch=0, index=3), augment(image, epoch=0, index=3))
    True
    >>> torch.equal(augment(image, epoch=0, index=3), augment(image, epoch=1, index=3))
    False
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

from neuroexec.data.size_reduction import reduced_shape
from neuroexec.errors import NeuroexecError

OWN = ("Noise", "Erasing", "CropPad", "Smoothing")
TORCHIO = ("Motion", "Ghosting", "Spike", "BiasField", "RandomBlur", "RandomSwap")
AUGMENTATIONS = OWN + TORCHIO
SWAP_PATCH = 15  # RandomSwap's cube side: items must be at least this large along each axis
INSTALL_HINT = "pip install 'neuroexec[augmentation]'"


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of item `index`'s draws at `epoch`: a hash of the three (`stream_seed`), so that
    neighbouring items and epochs get unrelated streams.

    >>> item_seed(0, 0, 1) == item_seed(0, 0, 1) != item_seed(0, 1, 0)
    True
    """
    return stream_seed(seed, epoch, index)


def stream_seed(*words: int) -> int:
    """A torch seed hashed from `words` (numpy's SeedSequence): tuples that differ get unrelated
    streams, also where a sum would collide (seed 1 epoch 0, seed 0 epoch 1). The augmentation's per-item
    draws and the weighted sampler's per-epoch draw take their seeds from it.

    >>> stream_seed(1, 0) != stream_seed(0, 1)
    True
    """
    state = np.random.SeedSequence(tuple(int(w) for w in words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])  # < 2**63: what torch.manual_seed takes


# --- ClinicaDL's own four, the random draw apart from the deterministic part ----------------------
def add_noise(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """`image` + N(0, sigma) noise drawn from torch's RNG, as ClinicaDL's RandomNoising adds it."""
    if sigma <= 0:
        return image.clone()
    return image + torch.distributions.Normal(0.0, sigma).sample(image.shape)


def random_noise(image: torch.Tensor, max_sigma: float = 0.1) -> torch.Tensor:
    """ClinicaDL's Noise: a standard deviation drawn in [0, max_sigma), then Gaussian noise."""
    return add_noise(image, float(torch.rand(())) * max_sigma)


def crop_pad(image: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """ClinicaDL's CropPad of a [C, ...] item by `shifts` (one per spatial axis): torch's pad of
    (-s, s) per axis, the first shift going to the last axis as ClinicaDL passes it.

    >>> crop_pad(torch.arange(4.0).reshape(1, 1, 4), [1, 0])
    tensor([[[1., 2., 3., 0.]]])
    """
    # A shift past the whole axis leaves zeros (torch's pad refuses to crop more than the axis holds).
    lengths = image.shape[::-1][: len(shifts)]
    widths = [w for s, n in zip(shifts, lengths) for w in (-max(-n, min(n, int(s))), max(-n, min(n, int(s))))]
    return F.pad(image, widths)


def random_crop_pad(image: torch.Tensor, length: int = 10) -> torch.Tensor:
    """ClinicaDL's CropPad: shifts drawn in [-length, length) for each spatial axis (2D or 3D items)."""
    dims = image.dim() - 1
    if dims not in (2, 3):
        raise NeuroexecError(f"CropPad augments 2D or 3D items, got an item of shape {tuple(image.shape)}")
    return crop_pad(image, torch.randint(-length, length, (dims,)).tolist())


def _gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel of `sigma` (radius int(truncate * sigma + 0.5)), computed as it does."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    return phi / phi.sum()


def _smooth_axis(image: torch.Tensor, weights: np.ndarray, axis: int) -> torch.Tensor:
    """One axis of `gaussian_smooth`: scipy's 'reflect' border (d c b a | a b c d, repeated when the
    kernel is longer than the axis), sums in float64 in scipy's order (centre, then the outer taps
    first), the result in the item's dtype."""
    n, r = image.shape[axis], (len(weights) - 1) // 2
    where = torch.arange(-r, n + r) % (2 * n)
    where = torch.where(where >= n, 2 * n - 1 - where, where)
    line = image.double().index_select(axis, where)
    out = line.narrow(axis, r, n) * float(weights[r])
    for d in range(r, 0, -1):
        out = out + (line.narrow(axis, r - d, n) + line.narrow(axis, r + d, n)) * float(weights[r - d])
    return out.to(image.dtype)


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter(image, sigma) on every axis (the channel axis too, as ClinicaDL's
    Smoothing calls it), one axis after the other in the item's dtype.

    >>> gaussian_smooth(torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]]), 1.0).round(decimals=4)
    tensor([[0.0584, 0.2421, 0.3989, 0.2421, 0.0584]])
    """
    if sigma <= 1e-15:  # scipy leaves such axes alone
        return image.clone()
    weights = _gaussian_weights(sigma)
    for axis in range(image.dim()):
        image = _smooth_axis(image, weights, axis)
    return image


def random_smoothing(image: torch.Tensor, max_sigma: float = 1.0) -> torch.Tensor:
    """ClinicaDL's Smoothing: a sigma drawn in [0, max_sigma), then the Gaussian filter."""
    return gaussian_smooth(image, float(torch.rand(())) * max_sigma)


def erase(image: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """A copy of `image` with the box [top:top+height, left:left+width] of its last two axes set to 0,
    across every leading axis (torchvision's erase with value 0)."""
    out = image.clone()
    out[..., top : top + height, left : left + width] = 0
    return out


def random_erasing(image: torch.Tensor, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3)) -> torch.Tensor:
    """torchvision's RandomErasing() as ClinicaDL calls it: with probability `p`, a box of the last two
    axes (area drawn in `scale` of theirs, aspect in `ratio`, up to 10 tries) erased to 0; the draws
    are torchvision's, in its order."""
    if not torch.rand(1) < p:
        return image
    h_all, w_all = image.shape[-2], image.shape[-1]
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        area = h_all * w_all * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if not (h < h_all and w < w_all):
            continue
        top = int(torch.randint(0, h_all - h + 1, size=(1,)).item())
        left = int(torch.randint(0, w_all - w + 1, size=(1,)).item())
        return erase(image, top, left, h, w)
    return image


# --- TorchIO's six, with ClinicaDL's settings ----------------------------------------------------
def torchio_transform(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The TorchIO transform ClinicaDL uses for `name`; NeuroexecError naming the extra to install
    when TorchIO is missing."""
    try:
        import torchio as tio
    except ImportError:
        raise NeuroexecError(
            f"train.data_augmentation: {name} is a TorchIO transform and torchio is not installed: {INSTALL_HINT}"
        ) from None
    make = {
        "Motion": lambda: tio.RandomMotion(degrees=(2, 4), translation=(2, 4), num_transforms=2),
        "Ghosting": lambda: tio.RandomGhosting(num_ghosts=(4, 10)),
        "Spike": lambda: tio.RandomSpike(num_spikes=1, intensity=(1, 3)),
        "BiasField": lambda: tio.RandomBiasField(coefficients=0.5),
        "RandomBlur": lambda: tio.RandomBlur(std=(0, 2)),
        "RandomSwap": lambda: tio.RandomSwap(patch_size=SWAP_PATCH, num_iterations=100),
    }
    return make[name]()


_OWN_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Noise": random_noise,
    "Erasing": random_erasing,
    "CropPad": random_crop_pad,
    "Smoothing": random_smoothing,
}


class Augmentation:
    """The training items' augmentations `names` (ClinicaDL's, in order), seeded with `seed`.
    `augment(item, epoch, index)` never changes `item` (it may be a cached or memory-mapped tensor)."""

    def __init__(self, names: Sequence[str], seed: int):
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise NeuroexecError(
                f"train.data_augmentation: unknown {', '.join(map(repr, unknown))} "
                f"(expected some of {', '.join(AUGMENTATIONS)})"
            )
        self.names, self.seed = tuple(names), int(seed)
        self._transforms = [
            _OWN_TRANSFORMS[n] if n in _OWN_TRANSFORMS else _torchio_call(torchio_transform(n)) for n in names
        ]

    def __call__(self, item: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index))
            out = item
            for transform in self._transforms:
                out = transform(out)
        return out.to(item.dtype)

    def __repr__(self) -> str:
        return f"Augmentation({list(self.names)}, seed={self.seed})"


def _torchio_call(transform) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(item: torch.Tensor) -> torch.Tensor:
        if item.dim() != 4:
            raise NeuroexecError(
                f"train.data_augmentation: TorchIO's transforms augment volumes [C, X, Y, Z], got an item "
                f"of shape {tuple(item.shape)}"
            )
        return transform(item.clone())  # TorchIO may work in place

    return call


class AugmentedDataset(Dataset):
    """The training items of `dataset`, augmented: item `i` at epoch e is `augment(dataset[i], e, i)`;
    every other attribute (mode, n_parts, input_size, ...) is the dataset's. `set_epoch` writes the
    epoch into shared memory, so that DataLoader workers kept alive between epochs see it too.

    >>> items = [{"image": torch.zeros(1, 4, 4, 4), "label": 0}] * 3
    >>> data = AugmentedDataset(items, Augmentation(("Noise",), seed=0))
    >>> data.set_epoch(2)
    >>> len(data), bool(data[1]["image"].abs().sum() > 0), bool(items[1]["image"].abs().sum() > 0)
    (3, True, False)
    """

    def __init__(self, dataset: Dataset, augment: Augmentation):
        self.dataset, self.augment = dataset, augment
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item["image"] = self.augment(item["image"], self.epoch, i)
        return item

    def __getitems__(self, indices: list[int]):
        """A batch: the dataset's own batch (datasets that fetch whole batches), each row augmented,
        else the augmented items for the collate function."""
        fetch = getattr(self.dataset, "__getitems__", None)
        if fetch is None:
            return [self[i] for i in indices]
        batch = fetch(indices)
        if not isinstance(batch, dict):
            return [
                {**item, "image": self.augment(item["image"], self.epoch, i)}
                for item, i in zip(batch, indices)
            ]
        epoch, images = self.epoch, batch["image"]
        batch["image"] = torch.stack([self.augment(images[j], epoch, i) for j, i in enumerate(indices)])
        return batch

    def collate_fn(self, batch):
        collate = getattr(self.dataset, "collate_fn", None)
        if collate is not None:
            return collate(batch)
        return batch if isinstance(batch, dict) else default_collate(batch)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("dataset", "augment", "_epoch"):
            raise AttributeError(name)  # unpickling looks these up before __dict__ is filled
        return getattr(self.dataset, name)


def with_augmentation(dataset: Dataset, names: Sequence[str], seed: int) -> Dataset:
    """`dataset` itself without augmentations, else its augmented training items."""
    return AugmentedDataset(dataset, Augmentation(names, seed)) if names else dataset


def augmentation_refusal(model, image_shape) -> str | None:
    """Why model `model`'s train.data_augmentation cannot run (known at plan time): TorchIO missing,
    a TorchIO transform on 2D slices (ClinicaDL's fail on them), RandomSwap's 15-voxel cubes larger
    than the items (images of 3D `image_shape`, None when not known yet, or patches)."""
    names = model.train.data_augmentation
    chosen = [n for n in names if n in TORCHIO]
    key = f"models.{model.name}.train.data_augmentation"
    if chosen and importlib.util.find_spec("torchio") is None:
        return (
            f"{key}: {', '.join(chosen)} are TorchIO transforms and torchio is not installed: {INSTALL_HINT}"
        )
    if chosen and model.mode == "slice":
        return (
            f"{key}: {', '.join(chosen)} are TorchIO transforms, which augment volumes, not 2D slices "
            "(ClinicaDL's fail on them); keep Noise, Erasing, CropPad or Smoothing for a slice model"
        )
    item = None
    if model.mode == "patch" and model.patch is not None:
        item = (model.patch.size,) * 3
    elif model.mode == "image" and image_shape is not None:
        item = tuple(image_shape)
        if model.size_reduction_factor is not None:
            item = reduced_shape(model.size_reduction_factor)
    if "RandomSwap" in names and item is not None and min(item) < SWAP_PATCH:
        return (
            f"{key}: RandomSwap swaps cubes of {SWAP_PATCH} voxels, larger than the items "
            f"({' x '.join(map(str, item))} voxels); leave RandomSwap out or use larger items"
        )
    return None

"""torch Datasets over extracted tensors: whole images, or patches of them.

Each item is a dict: "image" (float32), "label" (long for classification, float for regression, -1
without label), "participant_id", "session_id", "mode_id" (0 for images, the patch index for patches).

An item is a function of its index alone: nothing here draws random numbers (no augmentation, no
random patch or crop), so the DataLoader workers, whose RNG streams differ with their number and
id, cannot change a training. Randomness added to the data path must come from a generator seeded
with (seed, epoch, sample index), never from a worker's or the process's global RNG: so does
train.data_augmentation (data/augmentation.py), which wraps the training loader's items.

    >>> from neuroexec.data.extract import plan_extraction, run_extraction
    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> data = generate_atrophy_dataset(Path("data"), subjects=2, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> _ = run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    >>> images = ImageDataset(frame, data.caps_dir, "diagnosis", {"AD": 0, "CN": 1}, "classification")
    >>> item = images[0]
    >>> item["image"].shape, item["label"], item["participant_id"]
    (torch.Size([1, 21, 26, 22]), tensor(1), 'sub-0000')
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from neuroexec.data.caps import CapsLayout
from neuroexec.data.intensity import minmax_item, minmax_items_
from neuroexec.data.participants import as_caps_by_cohort, caps_layouts, cohort_of, list_lines
from neuroexec.data.patch_extract import patch_counts
from neuroexec.data.size_reduction import reduce_size
from neuroexec.errors import InputError, NeuroexecError, first_line

TASKS = ("classification", "regression", "reconstruction")
_MAX_OPEN_MMAPS = 256


class ItemInputError(InputError):
    """An InputError raised while reading an item, that survives a DataLoader worker: torch rebuilds
    a worker's exception as `type(msg)` from one string (the worker's traceback), which would turn a
    plain InputError into a RuntimeError carrying a traceback. Built from that one string, this class
    keeps only the original message (the text after the last `<module>.ItemInputError: `).

    >>> str(ItemInputError("Caught ...\\nneuroexec.data.datasets.ItemInputError: a.pt: corrupt"))
    'a.pt: corrupt'
    """

    def __init__(self, path: str | Path | None, message: str | None = None, field: str | None = None):
        if message is not None:
            super().__init__(path, message, field)
            return
        text = str(path)
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        original = text[text.rfind(marker) + len(marker) :] if marker in text else text
        NeuroexecError.__init__(self, original.strip())
        self.path, self.field = None, None


def load_tensor(path: Path, mmap: bool = False) -> torch.Tensor:
    """torch.load(weights_only=True) of a tensor file; InputError naming the file when it is corrupt.

    >>> torch.save(torch.zeros(1, 4, 5, 6), "image.pt")
    >>> load_tensor(Path("image.pt")).shape
    torch.Size([1, 4, 5, 6])
    >>> _ = Path("image.pt").write_bytes(Path("image.pt").read_bytes()[:200])  # cut short
    >>> load_tensor(Path("image.pt"))
    Traceback (most recent call last):
    neuroexec.data.datasets.ItemInputError: image.pt: cannot load the tensor (corrupt or truncated file?): ...
    """
    try:
        value = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise ItemInputError(path, "tensor file not found (run the extraction first)") from None
    except (
        RuntimeError, EOFError, OSError, ValueError, IndexError, struct.error, pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:  # IndexError, struct.error: torch's legacy loader on a few junk bytes  # fmt: skip
        raise ItemInputError(
            path,
            f"cannot load the tensor (corrupt or truncated file?): {first_line(exc)}. If its NIfTI is in the "
            "CAPS, delete the file and run apply again: the extract step writes missing tensors anew",
        ) from None
    if not isinstance(value, torch.Tensor):
        raise ItemInputError(path, f"expected a tensor, found {type(value).__name__}")
    return value


class MemoryMaps:
    """The tensor files a dataset reads memory-mapped: one map per file and per process (a forked
    DataLoader worker opens its own), the `_MAX_OPEN_MMAPS` most recently used kept open."""

    def __init__(self) -> None:
        self._open: OrderedDict[Path, torch.Tensor] = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: Path) -> torch.Tensor:
        if os.getpid() != self._pid:
            self._open.clear()
            self._pid = os.getpid()
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        tensor = load_tensor(path, mmap=True)
        self._open[path] = tensor
        if len(self._open) > _MAX_OPEN_MMAPS:
            self._open.popitem(last=False)
        return tensor

    def clear(self) -> None:
        self._open.clear()


class _CapsItems(Dataset):
    """What the datasets of every mode share: rows, labels, CAPS layouts. `mode` names the items
    ('image', 'patch', 'roi', 'slice'); `n_parts` is the number of items per image, `parts_per_image`
    the parts an image has (n_parts without `part_index`: the networks of a multi-network model)."""

    mode = "image"
    n_parts = 1
    parts_per_image = 1

    def __init__(
        self,
        frame: pd.DataFrame,
        caps_by_cohort: Path | Mapping[str, Path],
        label: str | None = None,
        label_code: dict | None = None,
        task: str | None = None,
        uncropped: bool = False,
    ):
        if task is None:  # inferred: a label code means classes, a bare label a regression target
            task = (
                "reconstruction"
                if label is None
                else "classification"
                if label_code is not None
                else "regression"
            )
        if task not in TASKS:
            raise InputError(None, f"task must be one of {', '.join(TASKS)}, got {task!r}", "task")
        layouts = caps_layouts(caps_by_cohort)  # a value may be a CapsLayout (another preprocessing)
        self.caps_by_cohort = as_caps_by_cohort(caps_by_cohort)
        self.label, self.label_code, self.task, self.uncropped = label, label_code, task, uncropped
        records = frame.to_dict("records")
        self.participants = [str(r["participant_id"]) for r in records]
        self.sessions = [str(r["session_id"]) for r in records]
        self.layouts = [layouts[cohort_of(r, self.caps_by_cohort)] for r in records]
        self.labels = [self._encode(r) for r in records]

    def _encode(self, row: dict) -> torch.Tensor:
        if self.label is None or self.task == "reconstruction":
            return torch.tensor(-1, dtype=torch.long)
        value = row.get(self.label)
        where = f"{row['participant_id']} {row['session_id']}"
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise InputError(None, f"{where}: no value for label {self.label!r}", "label")
        if self.task == "regression":
            return torch.tensor(float(value), dtype=torch.float32)
        if self.label_code is None or str(value) not in self.label_code:
            known = ", ".join(map(str, (self.label_code or {}).keys()))
            raise InputError(None, f"{where}: label {value!r} is not in the label code ({known})", "label")
        return torch.tensor(int(self.label_code[str(value)]), dtype=torch.long)

    def _batch(self, images: torch.Tensor, rows: list[tuple[int, int]]) -> dict:
        """A collated batch of parts fetched at once (`__getitems__`): `images` [n, ...] and, per row,
        (image index, part index), as collating the items one by one gives it."""
        return {
            "image": images,
            "label": default_collate([self.labels[image] for image, _ in rows]),
            "participant_id": [self.participants[image] for image, _ in rows],
            "session_id": [self.sessions[image] for image, _ in rows],
            "mode_id": torch.tensor([k for _, k in rows]),
        }

    @staticmethod
    def collate_fn(batch: dict | list) -> dict:
        """Batches from __getitems__ are already collated; single items (e.g. a custom sampler) are not."""
        return batch if isinstance(batch, dict) else default_collate(batch)

    def _item(self, i: int, tensor: torch.Tensor, mode_id: int) -> dict:
        return {
            "image": tensor,
            "label": self.labels[i],
            "participant_id": self.participants[i],
            "session_id": self.sessions[i],
            "mode_id": mode_id,
        }

    @staticmethod
    def _raise_missing(missing: list[str]) -> None:
        if missing:
            raise InputError(
                None,
                f"{len(missing)} extracted tensor(s) not found (run the extraction):\n{list_lines(missing)}",
            )


class ImageDataset(_CapsItems):
    """Whole images [1, X, Y, Z] from `deeplearning_prepare_data/image_based/`. `cache` keeps each
    tensor in memory after its first read (per worker process). `task` None is inferred: classification
    with a label code, regression with a label only, reconstruction without a label. With `normalize`,
    an image whose tensor was not extracted normalised is min-max normalised as it is read, as ClinicaDL
    does with each item (tensors extracted normalised are only range-checked). `size_reduction` (2 to
    5, set before the first read): ClinicaDL's reduced image (data/size_reduction.py), cut after the
    whole image's normalisation."""

    size_reduction: int | None = None

    def __init__(
        self,
        frame: pd.DataFrame,
        caps_by_cohort: Path | Mapping[str, Path],
        label: str | None = None,
        label_code: dict | None = None,
        task: str | None = None,
        uncropped: bool = False,
        cache: bool = False,
        normalize: bool = False,
    ):
        super().__init__(frame, caps_by_cohort, label, label_code, task, uncropped)
        self.normalize = normalize
        self.paths = [
            layout.image_tensor(p, s, uncropped)
            for layout, p, s in zip(self.layouts, self.participants, self.sessions)
        ]
        self._raise_missing(
            [
                f"{p} {s}: {path}"
                for p, s, path in zip(self.participants, self.sessions, self.paths)
                if not path.is_file()
            ]
        )
        self.cache = cache
        self.shared_cache = False  # set by training.setup.preload: one copy per machine under torchrun
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> torch.Tensor:
        if i in self._cache:
            return self._cache[i]
        tensor = load_tensor(self.paths[i])
        if tensor.dim() != 4 or tensor.shape[0] != 1:
            raise ItemInputError(
                self.paths[i], f"expected an image tensor [1, X, Y, Z], found shape {tuple(tensor.shape)}"
            )
        tensor = tensor.float()
        if self.size_reduction is not None:  # normalised whole, as ClinicaDL does before it cuts the box
            tensor = minmax_item(tensor) if self.normalize else tensor
            tensor = reduce_size(tensor, self.size_reduction, self.paths[i])
        if self.cache:
            self._cache[i] = tensor
        return tensor

    def __getitem__(self, i: int) -> dict:
        image = self.image(i)
        normalize = self.normalize and self.size_reduction is None  # else done before the cut (`image`)
        return self._item(i, minmax_item(image) if normalize else image, 0)

    @property
    def input_size(self) -> list[int]:
        """[1, X, Y, Z] of the first image."""
        return list(self.image(0).shape) if len(self) else []


class PatchDataset(_CapsItems):
    """(image, patch) pairs, or one patch per image with `patch_index`. Reads neuroexec's per-image
    bundle memory-mapped; without it, ClinicaDL's per-patch files; without those, the image tensor
    (patches cut on the fly, as ClinicaDL does with prepare_dl = false). With `normalize`, each patch is
    min-max normalised on its own, as ClinicaDL does (`intensity.minmax_items_`; the extract step
    writes bundles already normalised, which leaves only the range check here)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        caps_by_cohort: Path | Mapping[str, Path],
        label: str | None = None,
        label_code: dict | None = None,
        task: str | None = None,
        size: int | None = None,
        stride: int | None = None,
        patch_index: int | None = None,
        uncropped: bool = False,
        normalize: bool = False,
    ):
        super().__init__(frame, caps_by_cohort, label, label_code, task, uncropped)
        self.normalize = normalize
        if size is None or size < 1:
            raise InputError(None, f"a patch dataset needs a patch size >= 1, got {size}", "patch_size")
        stride = size if stride is None else stride
        self.size, self.stride, self.patch_index = size, stride, patch_index
        self._maps = MemoryMaps()
        self.sources = [self._source(i) for i in range(len(self.participants))]
        self._raise_missing(
            [
                f"{p} {s}: {layout.patch_bundle(p, s, size, stride, uncropped)}"
                for p, s, layout, src in zip(self.participants, self.sessions, self.layouts, self.sources)
                if src is None
            ]
        )
        self._n = self._count() if self.sources else 0
        if patch_index is not None and not 0 <= patch_index < self._n:
            raise InputError(
                None, f"patch_index {patch_index} out of range: images have {self._n} patches", "patch_index"
            )

    def _source(self, i: int) -> tuple[str, Path] | None:
        layout, p, s = self.layouts[i], self.participants[i], self.sessions[i]
        bundle = layout.patch_bundle(p, s, self.size, self.stride, self.uncropped)
        if bundle.is_file():
            return ("bundle", bundle)
        first = layout.patch_tensor(p, s, self.size, self.stride, 0, self.uncropped)
        if first.is_file():
            return ("clinicadl", first)
        image = layout.image_tensor(p, s, self.uncropped)
        if image.is_file():
            return ("image", image)
        return None

    def _count(self) -> int:
        kind, path = self.sources[0]
        if kind == "image":
            return int(np.prod(patch_counts(self._mapped(path).shape, self.size, self.stride)))
        if kind == "bundle":
            return int(self._mapped(path).shape[0])
        n = 0  # ClinicaDL's files patch-0, patch-1, ... of the first image
        while CapsLayout.sibling_part(path, n).is_file():
            n += 1
        return n

    def _mapped(self, path: Path) -> torch.Tensor:
        return self._maps.get(path)

    def close(self) -> None:
        """Drop the memory maps this dataset holds open (the next read opens them again)."""
        self._maps.clear()

    mode = "patch"

    @property
    def n_patches(self) -> int:
        return self._n

    @property
    def parts_per_image(self) -> int:
        return self._n

    @property
    def n_parts(self) -> int:
        """Items per image: the patches, or 1 with `patch_index` (one network per patch)."""
        return 1 if self.patch_index is not None else self._n

    @property
    def input_size(self) -> list[int]:
        return [1, self.size, self.size, self.size]

    def __len__(self) -> int:
        return len(self.sources) * (1 if self.patch_index is not None else self._n)

    def __getitem__(self, i: int) -> dict:
        if self.patch_index is not None:
            image, k = i, self.patch_index
        else:
            image, k = divmod(i, self._n)
        patch = self.patch(image, k)  # may be a view of a mapped file: minmax_item never writes into it
        return self._item(image, minmax_item(patch) if self.normalize else patch, k)

    def __getitems__(self, indices: list[int]) -> dict:
        """A whole batch at once (the DataLoader calls this with the batch's indices): each patch is
        copied once, straight from its memory-mapped bundle into the batch tensor, with none of the
        per-item dicts and the second copy that collating single items costs."""
        s = self.size
        images = torch.empty((len(indices), 1, s, s, s), dtype=torch.float32)
        rows = []
        for j, i in enumerate(indices):
            image, k = (i, self.patch_index) if self.patch_index is not None else divmod(i, self._n)
            images[j] = self.patch(image, k)
            rows.append((image, k))
        if self.normalize:
            minmax_items_(images)
        return self._batch(images, rows)

    def patch(self, image: int, k: int) -> torch.Tensor:
        """Patch k [1, s, s, s] of image `image` (ClinicaDL's C-order numbering)."""
        kind, path = self.sources[image]
        s = self.size
        if kind == "bundle":
            bundle = self._mapped(path)
            if bundle.dim() != 5 or bundle.shape[0] != self._n or tuple(bundle.shape[2:]) != (s, s, s):
                raise ItemInputError(
                    path,
                    f"expected a patch bundle [{self._n}, 1, {s}, {s}, {s}], found {tuple(bundle.shape)}",
                )
            # A view of the private (copy-on-write) mapping: the batch's collate makes the one copy
            # (a clone here would copy every patch twice).
            return bundle[k].float()
        if kind == "clinicadl":
            return load_tensor(CapsLayout.sibling_part(path, k)).float().reshape(1, s, s, s)
        full = self._mapped(path)
        gd, gh, gw = patch_counts(full.shape, s, self.stride)
        if gd * gh * gw != self._n:
            raise ItemInputError(
                path, f"image of shape {tuple(full.shape)} has {gd * gh * gw} patches, others {self._n}"
            )
        a, rest = divmod(k, gh * gw)
        b, c = divmod(rest, gw)
        t = self.stride
        return full[:, a * t : a * t + s, b * t : b * t + s, c * t : c * t + s].float().clone()

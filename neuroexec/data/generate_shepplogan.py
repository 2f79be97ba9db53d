"""ClinicaDL 1.6.1's `generate shepplogan`: 2D Shepp-Logan-like phantoms of three subtypes (0: the
two regions of interest large, 1: the lower ones small, 2: the upper one small), `subjects` per label,
each label drawing its subtypes from its distribution (AD: `ad_subtypes_distribution`, CN:
`cn_subtypes_distribution`).

Written as ClinicaDL writes them: the slice tensor `deeplearning_prepare_data/slice_based/custom/
<p>_<s>_space-SheppLogan_axis-axi_channel-single_slice-0_phantom.pt` ([1, size, size]), the record
`tensor_extraction/<extract_json>` (custom preprocessing, slice mode, axial, one channel), `data.tsv`
(participant_id, session_id, diagnosis, subtype) and `missing_mods/`; but the image
`shepplogan/<p>_<s>_space-SheppLogan_phantom.nii.gz` is a real NIfTI of the slice ([size, size, 1];
ClinicaDL writes the text "0" there), so neuroexec's models read the dataset with
`preprocessing = "custom"`, `custom_suffix = "_space-SheppLogan_phantom.nii.gz"`.

>>> image = phantom(32, subtype=1, rng=np.random.default_rng(0))
>>> image.shape, float(image.max())
((32, 32), 1.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from neuroexec import atomic
from neuroexec.data.caps import CapsLayout, extract_json_name
from neuroexec.data.generate_pool import each, writers_of
from neuroexec.data.generate_source import rng_for, save_like, write_records
from neuroexec.preprocessings import Preprocessing
from neuroexec.spec.generate_kinds import SHEPPLOGAN_SUFFIX, subjects
from neuroexec.spec.model import Generate

SESSION = "ses-M000"
FOLDER = "shepplogan"
DEFAULT_RECORD = extract_json_name("shepplogan")  # extract_shepplogan.json
# The sizes of the upper region (rows at 0.6 x the centre) and of the three lower ones (1.5 x) of each subtype
SUBTYPE_SIZES = {0: ("large", "large"), 1: ("large", "small"), 2: ("small", "large")}


def ellipse(shape: tuple[int, int], centre, radii, rotation: float = 0.0) -> np.ndarray:
    """Boolean disc of an ellipse (row, column centre and radii, rotated counter-clockwise)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    dr, dc = rows - centre[0], cols - centre[1]
    cos, sin = np.cos(rotation), np.sin(rotation)
    u, v = dr * cos + dc * sin, -dr * sin + dc * cos
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 < 1.0


def _between(rng: np.random.Generator, a: float, b: float) -> float:
    """A uniform draw between a and b in either order (as Python's random.uniform, which ClinicaDL uses:
    images under 32 pixels have offsets between 1 and size / 32 < 1)."""
    return a + (b - a) * rng.random()


def _scales(rng: np.random.Generator, size: str) -> tuple[float, float]:
    low, high = (1.0, 1.2) if size == "large" else (0.8, 0.9)
    return rng.uniform(low, high), rng.uniform(low, high)


def phantom(size: int, subtype: int, rng: np.random.Generator, smoothing: bool = False) -> np.ndarray:
    """One phantom: a skull, a brain, a central region, three regions of interest whose sizes the
    subtype sets, two ventricles; smoothed by a random Gaussian when `smoothing`."""
    shape = (size, size)
    img = np.zeros(shape)
    centre = (size + 1.0) / 2.0
    a, b = centre - 2, centre * 2 / 3 - 2
    color = rng.uniform(0.4, 0.6)
    img[ellipse(shape, (centre, centre), (a, b))] = 1.0
    offset = _between(rng, 1, size / 32)
    img[ellipse(shape, (centre + offset / 2, centre), (a - offset, b - offset))] = 0.2
    upper, lower = SUBTYPE_SIZES[subtype]
    regions = (  # (row, column) of the centre, radii, size
        ((1.0, 1.0), (b / 6, b / 6), "large"),
        ((0.6, 1.0), (b / 3, b / 4), upper),
        ((1.5, 1.0), (b / 10, b / 10), lower),
        ((1.5, 1.1), (b / 10, b / 10), lower),
        ((1.5, 0.9), (b / 10, b / 10), lower),
    )
    for (fr, fc), (ra, rb), kind in regions:
        o1, o2 = _between(rng, 1, size / 32), _between(rng, 1, size / 32)
        s1, s2 = _scales(rng, kind)
        turn = rng.uniform(-np.pi, np.pi)
        img[ellipse(shape, (centre * fr + o1, centre * fc + o2), (ra * s1, rb * s2), turn)] = color
    for side, tilt in ((0.75, np.pi / 8), (1.25, -np.pi / 8)):
        length = a * rng.uniform(0.8, 1.2)
        turn = tilt + rng.uniform(-np.pi / 16, np.pi / 16)
        img[ellipse(shape, (centre, centre * side), (length / 3, length / 6), turn)] = 0.0
    if smoothing:
        img = ndimage.gaussian_filter(img, rng.uniform(0, 1) * size / 100.0)
    return img


def record(extract_json: str) -> dict:
    """ClinicaDL's tensor_extraction record of a Shepp-Logan CAPS."""
    return {
        "preprocessing": "custom",
        "mode": "slice",
        "use_uncropped_image": False,
        "prepare_dl": True,
        "extract_json": extract_json,
        "slice_direction": 2,
        "slice_mode": "single",
        "discarded_slices": 0,
        "num_slices": 1,
        "file_type": {
            "pattern": f"*{SHEPPLOGAN_SUFFIX}",
            "description": "Custom suffix",
            "needed_pipeline": "shepplogan",
        },
    }


def record_name(g: Generate) -> str:
    """extract_json with `.json` added when it lacks it (ClinicaDL's compute_extract_json); a fixed
    default instead of ClinicaDL's time stamp, so that a generation is the same every time."""
    name = g.extract_json or DEFAULT_RECORD
    return name if name.endswith(".json") else f"{name}.json"


def _drawn(g: Generate, label_id: int, i: int, probabilities) -> tuple[np.random.Generator, int]:
    """The random stream of phantom i of a label, and its subtype (the stream's first draw)."""
    rng = rng_for(g, label_id, i)
    weights = np.asarray(probabilities, dtype=np.float64)
    return rng, int(rng.choice(len(weights), p=weights / weights.sum()))


def generate_shepplogan(g: Generate, caps: Path, reporter=None) -> None:
    """`subjects` phantoms per label (AD then CN), as ClinicaDL's generate_shepplogan_dataset."""
    layout = CapsLayout(caps, Preprocessing("custom", custom_suffix=SHEPPLOGAN_SUFFIX))
    labels = (("AD", g.ad_subtypes_distribution), ("CN", g.cn_subtypes_distribution))
    todo = [(label_id, label, p, i) for label_id, (label, p) in enumerate(labels) for i in range(subjects(g))]
    rows = [[f"sub-CLNC{k}{i:04d}", SESSION, label, _drawn(g, k, i, p)[1]] for k, label, p, i in todo]

    def write(n: int) -> None:
        label_id, _, probabilities, i = todo[n]
        participant = rows[n][0]
        rng, subtype = _drawn(g, label_id, i, probabilities)
        image = phantom(g.image_size, subtype, rng, g.smoothing)
        tensor = layout.tensor_dir(participant, SESSION, "slice") / (
            f"{participant}_{SESSION}_space-SheppLogan_axis-axi_channel-single_slice-0_phantom.pt"
        )
        atomic.save_torch(tensor, torch.from_numpy(image).float().unsqueeze(0))
        nifti = (
            layout.generated_folder(participant, SESSION, FOLDER)
            / f"{participant}_{SESSION}{SHEPPLOGAN_SUFFIX}"
        )
        save_like(nifti, image[:, :, None].astype(np.float32), None, np.eye(4))

    each(writers_of(reporter), len(todo), write, "Shepp-Logan phantoms")
    table = pd.DataFrame(rows, columns=["participant_id", "session_id", "diagnosis", "subtype"])
    atomic.write_json(layout.tensor_extraction_dir / record_name(g), record(record_name(g)))
    settings = {"img_size": g.image_size, "samples": subjects(g), "smoothing": g.smoothing,
                "labels_distribution": {label: list(p) for label, p in labels}}  # fmt: skip
    write_records(caps, table, settings, table)

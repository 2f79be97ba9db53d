"""ClinicaDL 1.6.1's `generate artifacts`: every session of `caps_directory` (or of `participants_tsv`)
with TorchIO's simulated artifacts, in ClinicaDL's order: motion (`RandomMotion`: `rotation` degrees,
`translation` mm, `num_transforms`), contrast (`RandomGamma`: `gamma` as log-gamma range), noise
(`RandomNoise`: `noise_std`).

Written as ClinicaDL writes them: `subjects/<p>/<s>/<preprocessing>/<p>_<s>_<name>_art-<tags>.nii.gz`
(tags `mot`, `con`, `noi`), `data.tsv` (participant_id, session_id, diagnosis: the list of artifacts),
`missing_mods/`, `commandline.json`. TorchIO draws from torch's generator, seeded per image from `seed`
(ClinicaDL leaves it unseeded), so the same settings give the same bytes. neuroexec's `participants.tsv`
is the source TSV's rows of those sessions (their diagnosis, age, ...) when it has more columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.data.generate_pool import each, writers_of
from neuroexec.data.generate_source import (
    name_pattern,
    rng_for,
    save_like,
    sessions_of,
    source_image,
    with_source_columns,
    write_records,
)
from neuroexec.spec.generate_kinds import artifacts_tag
from neuroexec.spec.model import Generate


def artifact_names(g: Generate) -> list[str]:
    """The artifacts added, in ClinicaDL's order (its data.tsv's diagnosis)."""
    return [name for name, on in (("motion", g.motion), ("contrast", g.contrast), ("noise", g.noise)) if on]


def transform(g: Generate):
    """TorchIO's composition of the artifacts chosen."""
    import torchio as tio

    parts = []
    for name in artifact_names(g):
        if name == "motion":
            parts.append(tio.RandomMotion(degrees=tuple(g.rotation), translation=tuple(g.translation),
                                          num_transforms=g.num_transforms))  # fmt: skip
        elif name == "contrast":
            parts.append(tio.RandomGamma(log_gamma=tuple(g.gamma)))
        else:
            parts.append(tio.RandomNoise(std=tuple(g.noise_std)))
    return tio.Compose(parts)


def corrupted(g: Generate, path: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(the image at `path` with the artifacts, its affine); torch's generator seeded from `seed`."""
    import torchio as tio

    seed = int(rng_for(g, index).integers(2**63 - 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = transform(g)(tio.ScalarImage(path))
    return image.numpy()[0], image.affine


def output_name(g: Generate, path: Path) -> str:
    """ClinicaDL's name: `<p>_<s>_<pattern without extension>_art-<tags><extension>`."""
    pattern = name_pattern(path)
    suffix = ".nii.gz" if pattern.endswith(".nii.gz") else ".nii"
    parts = path.name.split("_")
    return f"{parts[0]}_{parts[1]}_{pattern.removesuffix(suffix)}_art-{artifacts_tag(g)}{suffix}"


def generate_artifacts(g: Generate, caps: Path, reporter=None) -> None:
    """Every session of the source with the artifacts, under its own participant and session."""
    frame = sessions_of(g.caps_directory, g.participants_tsv)
    out = CapsLayout(caps)
    rows = list(frame[["participant_id", "session_id"]].itertuples(index=False))
    paths = [source_image(g, participant, session) for participant, session in rows]
    names = artifact_names(g)

    def write(index: int) -> None:
        data, affine = corrupted(g, paths[index], index)
        folder = out.generated_folder(*rows[index], g.preprocessing)  # ClinicaDL's `t1-linear/`
        save_like(folder / output_name(g, paths[index]), data.astype(np.float32), None, affine)

    each(writers_of(reporter), len(rows), write, "images with artifacts")
    table = frame[["participant_id", "session_id"]].copy()
    table["diagnosis"] = str(names)
    settings = {"caps_dir": g.caps_directory, "preprocessing": g.preprocessing}
    write_records(caps, table, settings, with_source_columns(table, frame))

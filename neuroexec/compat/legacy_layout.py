"""The older interpret's outputs (seed 004), written from the engine's interpret results:

    <model_path>/fold-<i>/gradients/<selection>/<name>/
        data.tsv, commandline.json, map.npy, map.nii.gz (3D) | map.jpg (2D)
        <participant_id>/<session_id>/map.npy, map.nii.gz | map.jpg      (individual level)

The maps are those of `split-<i>/best-<metric>/<group>/interpret-<name>/` (no second saliency code);
the NIfTI header (affine, qform/sform codes, units) comes from a template given by the user, else from
each map's source image.

`write_legacy_outputs(LegacyTarget(...))` copies the maps of an applied interpretation; it needs a
trained model, so tests/cli/test_legacy_interpret.py is where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuroexec import atomic
from neuroexec.errors import InputError
from neuroexec.maps.info import MapsInfo
from neuroexec.maps.layout import LegacyMapsLayout, MapsLayout


@dataclass(frozen=True)
class LegacyTarget:
    """One (split, selection) output folder of the older interpret."""

    model_path: Path
    info: MapsInfo
    group: str  # the engine's data group holding the maps
    name: str
    split: int
    selection: str  # as given: best_balanced_accuracy / best_loss
    metric: str  # neuroexec's name: BA / loss
    level: str  # group | individual
    caps: dict[str, Path]  # cohort -> CAPS (for source affines)
    uncropped: bool
    template: Path | None
    vmax: float
    commandline: dict[str, Any]

    @property
    def out_dir(self) -> Path:
        return LegacyMapsLayout(self.model_path).gradients_dir(self.split, self.selection, self.name)

    def map_file(self, ext: str, participant: str | None = None, session: str | None = None) -> Path:
        """`map.<ext>` of the group, or of one session."""
        legacy = LegacyMapsLayout(self.model_path)
        return legacy.gradient_map(self.split, self.selection, self.name, ext, participant, session)


def _load_map(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "saliency map not found (did the interpret step run?)")
    value = torch.load(path, map_location="cpu", weights_only=True)
    return value.detach().to(torch.float32).numpy()


def _template(path: Path):
    """The template NIfTI whose header (affine, codes, units) the maps take."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except Exception as err:  # nibabel raises several unrelated types for a bad file
        raise InputError(path, f"cannot read the NIfTI template: {err}", "--nifti_template_path") from None
    if not isinstance(image, nib.Nifti1Image):
        raise InputError(path, "is not a NIfTI-1 image", "--nifti_template_path")
    return image


def _source(t: LegacyTarget, row: dict):
    """The source image of a session (its header: inference/nifti_out.py)."""
    from neuroexec.inference.model_io import source_nifti
    from neuroexec.inference.nifti_out import load_source

    return load_source(source_nifti(row, t.caps, t.uncropped))


def _image_map(t: LegacyTarget, files: dict[int, Path], row: dict) -> np.ndarray:
    """The whole-image map: the image map itself, the 2D map of a model of one slice (map.jpg), or the
    parts' maps (patches, regions, slices) placed back into the image grid (inference/fold.py)."""
    maps = {k: torch.from_numpy(_load_map(f)) for k, f in files.items()}
    if t.info.mode == "image":
        return next(iter(maps.values())).numpy()
    if t.info.mode == "slice" and len(maps) == 1:
        only = next(iter(maps.values()))
        return only.reshape(-1, *only.shape[-2:])[0].numpy()  # rgb: its first (identical) channel
    from neuroexec.data.participants import cohort_of
    from neuroexec.inference.fold import PartPlace, fold_parts
    from neuroexec.inference.model_io import nifti_geometry, source_nifti

    shape = nifti_geometry(source_nifti(row, t.caps, t.uncropped))[1]
    place = PartPlace(kernels="torch", caps=t.caps[cohort_of(row, t.caps)], uncropped=t.uncropped)
    return fold_parts(t.info.extract_mode, maps, shape, place)


def _write_map(map_file, array: np.ndarray, source_of, vmax: float) -> None:
    """map.npy, and map.nii.gz (3D, with the header of `source_of()`) or map.jpg (2D); `map_file(ext)`
    names each."""
    squeezed = array[0] if array.ndim in (3, 4) and array.shape[0] == 1 else array
    with atomic.atomic_open(map_file("npy")) as f:
        np.save(f, squeezed)
    if squeezed.ndim == 3:
        from neuroexec.inference.nifti_out import save_map

        source = source_of()
        save_map(map_file("nii.gz"), squeezed, source, source.affine)
    elif squeezed.ndim == 2:
        _write_jpg(map_file("jpg"), squeezed, vmax)


def _write_jpg(path: Path, array: np.ndarray, vmax: float) -> None:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    ax.imshow(array.T, origin="lower", cmap="coolwarm", vmin=0.0, vmax=vmax)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="jpg")
    with atomic.atomic_open(path) as f:
        f.write(buf.getvalue())


def _map_files(
    t: LegacyTarget, participant: str | None = None, session: str | None = None
) -> dict[int, Path]:
    """Part index -> map file, of the group (mean maps) or of one session; the indices are those the
    engine wrote (a slice's is ClinicaDL's slice index, discarded slices included in the count)."""
    layout = MapsLayout(t.model_path)
    mode = t.info.mode
    indices = [0] if mode == "image" else _part_indices(t)
    if participant is None:
        return {k: layout.mean_map(t.split, t.metric, t.group, t.name, mode, k) for k in indices}
    return {k: layout.individual_map(t.split, t.metric, t.group, t.name, participant, session, mode, k)
            for k in indices}  # fmt: skip


def _part_indices(t: LegacyTarget) -> list[int]:
    """The part indices of the group's mean maps (`mean_<mode>-<k>_map.pt`)."""
    files = MapsLayout(t.model_path).mean_maps(t.split, t.metric, t.group, t.name, t.info.mode)
    prefix = f"mean_{t.info.mode}-"
    return sorted(int(f.name[len(prefix) : -len("_map.pt")]) for f in files)


def used_sessions(t: LegacyTarget) -> pd.DataFrame:
    """The group's sessions the maps were computed on (the interpret step's data.tsv: after keep_true)."""
    layout = MapsLayout(t.model_path)
    ids = {"participant_id": str, "session_id": str}
    frame = pd.read_csv(layout.group_data_tsv(t.group), sep="\t", dtype=ids)
    used_tsv = layout.interpret_data_tsv(t.split, t.metric, t.group, t.name)
    if not used_tsv.is_file():
        raise InputError(used_tsv, "the interpret step wrote no data.tsv (did it run?)")
    try:
        used = pd.read_csv(used_tsv, sep="\t", dtype=ids)[["participant_id", "session_id"]].drop_duplicates()
    except pd.errors.EmptyDataError:
        used = pd.DataFrame(columns=["participant_id", "session_id"])
    return frame.merge(used, on=["participant_id", "session_id"], how="inner")


def write_legacy_outputs(t: LegacyTarget) -> Path:
    """Write one fold-<i>/gradients/<selection>/<name>/ folder; returns it."""
    out = t.out_dir
    data = used_sessions(t)
    if data.empty:
        raise InputError(out, "no session left to explain (keep_true selected none)", "--keep_true")
    legacy = LegacyMapsLayout(t.model_path)
    atomic.write_tsv(legacy.gradients_data_tsv(t.split, t.selection, t.name), data)
    atomic.write_json(legacy.gradients_commandline_json(t.split, t.selection, t.name), t.commandline)
    rows = data.to_dict("records")
    template = _template(t.template) if t.template is not None else None
    if t.level == "group":
        mean = _image_map(t, _map_files(t), rows[0])
        _write_map(
            t.map_file, mean, lambda: template if template is not None else _source(t, rows[0]), t.vmax
        )
    else:
        for row in rows:
            p, s = str(row["participant_id"]), str(row["session_id"])
            array = _image_map(t, _map_files(t, p, s), row)
            _write_map(lambda ext, p=p, s=s: t.map_file(ext, p, s), array,
                       lambda r=row: template if template is not None else _source(t, r), t.vmax)  # fmt: skip
    return out

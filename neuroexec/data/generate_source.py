"""What ClinicaDL's generate kinds share: the sessions and images of the CAPS they read
(`caps_directory`, `participants_tsv`), the records they write beside the images (`data.tsv`,
`missing_mods/missing_mods_<session>.tsv`, `commandline.json`), and an image written with its source's
header, atomically.

>>> frame = pd.DataFrame({"participant_id": ["sub-1", "sub-1", "sub-2"],
...                       "session_id": ["ses-M012", "ses-M000", "ses-M006"]})
>>> baseline(frame).session_id.tolist()
['ses-M000', 'ses-M006']
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from neuroexec import atomic
from neuroexec.data.caps import CapsLayout
from neuroexec.errors import InputError
from neuroexec.preprocessings import Preprocessing
from neuroexec.spec.generate_kinds import HYPO_SUVR, HYPO_TRACER
from neuroexec.spec.model import Generate

KIND_TAGS = {"trivial": 11, "random": 12, "shepplogan": 13, "hypometabolic": 14, "artifacts": 15}


def rng_for(g: Generate, *index: int) -> np.random.Generator:
    """The random stream of one image of a kind: same seed and index, same numbers."""
    return np.random.default_rng([g.seed, KIND_TAGS[g.kind], *index])


def sessions_of(caps: Path, tsv: Path | None = None) -> pd.DataFrame:
    """participant_id and session_id (and the other columns) of `tsv`, else every `sub-*/ses-*` of the
    CAPS, sorted, as ClinicaDL lists them."""
    if tsv is not None:
        frame = pd.read_csv(tsv, sep="\t", dtype=str)
        missing = {"participant_id", "session_id"} - set(frame.columns)
        if missing:
            raise InputError(tsv, f"no {' and '.join(sorted(missing))} column", "participants_tsv")
        return frame.reset_index(drop=True)
    layout = CapsLayout(caps)
    if not layout.subjects_dir.is_dir():
        raise InputError(caps, "not a CAPS folder: no subjects/ folder in it", "caps_directory")
    rows = [(s.parent.name, s.name) for s in sorted(layout.subjects_dir.glob("sub-*/ses-*")) if s.is_dir()]
    if not rows:
        raise InputError(layout.subjects_dir, "no sub-*/ses-* folder: no image to read", "caps_directory")
    return pd.DataFrame(rows, columns=["participant_id", "session_id"])


def baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """The first session (by name) of each participant, as ClinicaDL's extract_baseline keeps one."""
    ordered = frame.sort_values(["participant_id", "session_id"], kind="stable")
    return ordered.drop_duplicates("participant_id").reset_index(drop=True)


def source_preprocessing(g: Generate) -> Preprocessing:
    """The preprocessing of the images read (hypometabolic: pet-linear 18FFDG cerebellumPons2)."""
    if g.kind == "hypometabolic":
        return Preprocessing("pet-linear", HYPO_TRACER, HYPO_SUVR)
    if g.preprocessing == "pet-linear":
        return Preprocessing("pet-linear", g.tracer, g.suvr_reference_region)
    return Preprocessing(g.preprocessing)


def source_image(g: Generate, participant: str, session: str) -> Path:
    """The one image of a session of `caps_directory`; InputError naming the folder otherwise."""
    layout = CapsLayout(g.caps_directory, source_preprocessing(g))
    return layout.t1_linear_nifti(participant, session, g.use_uncropped_image)


def name_pattern(image: Path) -> str:
    """What follows `<participant>_<session>_` in an image's name (ClinicaDL's filename_pattern)."""
    return "_".join(image.name.split("_")[2:])


def save_like(path: Path, data: np.ndarray, source: nib.Nifti1Image | None, affine: np.ndarray) -> None:
    """Write `data` as NIfTI with `affine` (and `source`'s header when given), atomically."""
    header = source.header.copy() if source is not None else None
    img = nib.Nifti1Image(np.asarray(data), affine, header)
    if source is None:
        img.set_data_dtype(np.float32)
    raw = img.to_bytes()
    with atomic.atomic_open(path, "wb") as f:
        f.write(gzip.compress(raw, compresslevel=1, mtime=0) if path.name.endswith(".gz") else raw)


def write_records(
    caps: Path, table: pd.DataFrame, settings: dict[str, Any], participants: pd.DataFrame
) -> None:
    """ClinicaDL's `data.tsv`, `missing_mods/` and `commandline.json` of a generated CAPS, and
    neuroexec's `participants.tsv` (the table its models read)."""
    layout = CapsLayout(caps)
    atomic.write_tsv(layout.generate_data_tsv, table)
    for session in table.session_id.unique():
        rows = table.loc[table.session_id == session, ["participant_id"]].copy()
        rows["synthetic"] = 1
        atomic.write_tsv(layout.missing_mods_tsv(session), rows)
    atomic.write_text(layout.commandline_json, _json(settings))
    atomic.write_tsv(layout.participants_tsv, participants)


def _json(settings: dict[str, Any]) -> str:
    import json

    plain = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    return json.dumps(plain, skipkeys=True, ensure_ascii=False, indent=4)


def with_source_columns(table: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """`table` with what the source TSV says of its sessions (diagnosis, age, ...; the source's value
    when both have a column), for the kinds that keep the source's participants (hypometabolic,
    artifacts): what their models read. `table` itself when the source has nothing more."""
    keys = ["participant_id", "session_id"]
    extra = [c for c in source.columns if c not in (*keys, "cohort")]
    if not extra:
        return table
    return table.drop(columns=[c for c in extra if c in table.columns]).merge(
        source[[*keys, *extra]], on=keys, how="left"
    )

"""`neuroexec train ... --multi_cohort`: ClinicaDL's two cohort tables -> the spec's cohorts and one split
directory.

CAPS_DIRECTORY is a TSV of (cohort, path of its CAPS) and TSV_DIRECTORY a TSV of (cohort, path of its split
directory, diagnoses). ClinicaDL 1.6.1 (SplitManager.__getitem__) reads each cohort's split-<i>/ TSVs, keeps
the rows whose diagnosis is both the cohort's and one asked for (`--diagnoses`), tags them with the cohort
and concatenates the cohorts in the table's order; a cohort sharing no diagnosis with those asked for is
left out, and the diagnoses found must be all those asked for. Here the same rows are written once under
the MAPS (`.neuroexec/multi_cohort/`): a participants TSV per cohort (the spec's cohorts), one split
directory of every cohort's rows (the model's `split.directory`), which the split step reads as any other,
and whose content the fingerprints follow, and the table of the cohorts kept (maps.json's tsv_path, so
that `train from_json` of the MAPS reads the same rows). Relative paths in the tables are read from the table's folder.

>>> for c in ("a", "b"):
...     Path(f"caps_{c}").mkdir(); Path(f"split_{c}").mkdir()
...     rows = f"participant_id\\tsession_id\\tdiagnosis\\nsub-{c}1\\tses-M000\\tAD\\nsub-{c}2\\tses-M000\\tMCI\\n"
...     _ = Path(f"split_{c}/train.tsv").write_text(rows)
...     _ = Path(f"split_{c}/validation_baseline.tsv").write_text(rows.replace(f"sub-{c}", f"sub-{c}v"))
>>> _ = Path("caps.tsv").write_text("cohort\\tpath\\na\\tcaps_a\\nb\\tcaps_b\\n")
>>> _ = Path("tsv.tsv").write_text("cohort\\tpath\\tdiagnoses\\na\\tsplit_a\\tAD,MCI\\nb\\tsplit_b\\tAD\\n")
>>> data = cohort_training_data(Path("caps.tsv"), Path("tsv.tsv"), ["AD", "MCI"], Path("maps"))
>>> [c["name"] for c in data.cohorts], data.n_splits
(['a', 'b'], 1)
>>> rows = pd.read_csv(Path(data.split_directory, "split-0", "train.tsv"), sep="\\t")
>>> list(zip(rows.participant_id, rows.diagnosis, rows.cohort))  # b's MCI row is not kept
[('sub-a1', 'AD', 'a'), ('sub-a2', 'MCI', 'a'), ('sub-b1', 'AD', 'b')]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from neuroexec.compat.split_source import split_directory, training_sessions, write_if_changed
from neuroexec.data.caps import CapsLayout
from neuroexec.data.participants import cohort_path, read_cohort_table
from neuroexec.data.splits import existing_split_folder, read_split_side, split_folder
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout


@dataclass(frozen=True)
class Cohort:
    """One row of the TSV_DIRECTORY table, with its CAPS and what of it is used."""

    name: str
    caps: Path
    tsv_dir: Path  # the path the table gives
    splits_dir: Path  # the folder holding its split-<i>/ (split_directory)
    n_splits: int
    diagnoses: list[
        str
    ]  # kept: those of its own that were asked for (all its own when none were); never empty


@dataclass(frozen=True)
class CohortTrainingData:
    cohorts: list[dict[str, str]]  # the spec's `cohorts` list
    split_directory: Path
    n_splits: int


def cohort_caps(caps_tsv: Path) -> dict[str, Path]:
    """Cohort -> CAPS of the CAPS_DIRECTORY table (a folder given instead is an error saying so)."""
    if not caps_tsv.is_file():
        raise InputError(caps_tsv, "with --multi_cohort, CAPS_DIRECTORY is a TSV of cohorts (cohort, path)",
                         "CAPS_DIRECTORY")  # fmt: skip
    table = read_cohort_table(caps_tsv, need_diagnoses=False)
    return {str(c): cohort_path(caps_tsv, p) for c, p in zip(table["cohort"], table["path"])}


def preprocessing_caps(caps_tsv: Path, json_name: str) -> Path:
    """The CAPS whose tensor_extraction/ holds the preprocessing JSON (ClinicaDL looks in every cohort's);
    the first cohort's when none has it, so that the error names where it was looked for."""
    caps = list(cohort_caps(caps_tsv).values())
    found = [c for c in caps if any(p.is_file() for p in CapsLayout(c).named_extract_json(json_name))]
    return (found or caps)[0]


def cohort_training_data(
    caps_tsv: Path, tsv_tsv: Path, diagnoses: list[str] | None, maps: Path, valid_longitudinal: bool = False
) -> CohortTrainingData:
    """The cohorts' participants and their rows of every split, written under the MAPS (see the module)."""
    cohorts = _kept_cohorts(tsv_tsv, caps_tsv, diagnoses)
    counts = {c.n_splits for c in cohorts}
    if len(counts) > 1:
        found = ", ".join(f"{c.name}: {c.n_splits}" for c in cohorts)
        raise InputError(tsv_tsv, f"the cohorts' split directories have different numbers of splits ({found})",
                         "TSV_DIRECTORY")  # fmt: skip
    n_splits = counts.pop()
    layout = MapsLayout(maps)
    listed = []
    for i, c in enumerate(cohorts):
        out = layout.multi_cohort_participants(i)
        write_if_changed(out, _kept(training_sessions(c.tsv_dir, c.splits_dir), c, out))
        listed.append({"name": c.name, "caps": str(c.caps), "participants": str(out)})
    table = {"cohort": [c.name for c in cohorts], "path": [str(c.tsv_dir.resolve()) for c in cohorts],
             "diagnoses": [",".join(c.diagnoses) for c in cohorts]}  # fmt: skip
    write_if_changed(layout.multi_cohort_table, pd.DataFrame(table))
    valid_name = "validation.tsv" if valid_longitudinal else "validation_baseline.tsv"
    for i in range(n_splits):
        for name in ("train.tsv", valid_name):
            frame = pd.concat([_split_side(c, i, n_splits, name) for c in cohorts], ignore_index=True)
            write_if_changed(split_folder(layout.multi_cohort_splits, i) / name, frame)
    return CohortTrainingData(listed, layout.multi_cohort_splits, n_splits)


def _kept_cohorts(tsv_tsv: Path, caps_tsv: Path, diagnoses: list[str] | None) -> list[Cohort]:
    caps = cohort_caps(caps_tsv)
    table = read_cohort_table(tsv_tsv, need_diagnoses=True)
    missing = [str(c) for c in table["cohort"] if str(c) not in caps]
    if missing:
        raise InputError(
            caps_tsv, f"no CAPS listed for cohort(s) {', '.join(missing)} of {tsv_tsv}", "cohort"
        )
    cohorts, found = [], set()
    for name, path, own in zip(table["cohort"], table["path"], table["diagnoses"]):
        own = [d.strip() for d in str(own).split(",") if d.strip()]
        kept = [d for d in own if diagnoses is None or d in diagnoses]
        if not kept:
            continue  # ClinicaDL leaves out a cohort sharing no diagnosis with those asked for
        found |= set(kept)
        tsv_dir = cohort_path(tsv_tsv, path)
        splits_dir, n = split_directory(tsv_dir)
        cohorts.append(Cohort(str(name), caps[str(name)], tsv_dir, splits_dir, n, kept))
    if diagnoses is not None and found != set(diagnoses):
        raise InputError(
            tsv_tsv,
            f"the cohorts' diagnoses give {', '.join(sorted(found)) or 'none'}, not every diagnosis asked for "
            f"({', '.join(diagnoses)}), as ClinicaDL requires",
            "diagnoses",
        )
    return cohorts


def _split_side(c: Cohort, i: int, n_splits: int, name: str) -> pd.DataFrame:
    folder = existing_split_folder(c.splits_dir, n_splits, i)
    read = read_split_side(folder, name, c.splits_dir)
    if read is None:
        present = sorted(p.name for p in folder.glob("*.tsv"))
        raise InputError(folder, f"cohort {c.name}: missing {name} (found: {', '.join(present) or 'no TSV'})",
                         f"split-{i}")  # fmt: skip
    frame, file = read
    return _kept(frame, c, file)


def _kept(frame: pd.DataFrame, c: Cohort, file: Path) -> pd.DataFrame:
    """The rows of the cohort's kept diagnoses (ClinicaDL filters its `diagnosis` column), tagged."""
    if "diagnosis" not in frame.columns:
        raise InputError(file, f"cohort {c.name}: no diagnosis column, which --multi_cohort filters on",
                         "diagnosis")  # fmt: skip
    kept = frame[frame["diagnosis"].astype(str).isin(c.diagnoses)].reset_index(drop=True)
    return kept.assign(cohort=c.name)


def multi_cohort_dataset(o: dict[str, Any], caps_tsv: Path, tsv_tsv: Path, maps: Path) -> CohortTrainingData:
    """The training data of the front end's options `o` (diagnoses, valid_longitudinal)."""
    diagnoses = [str(d) for d in o["diagnoses"]] if o.get("diagnoses") else None
    return cohort_training_data(caps_tsv, tsv_tsv, diagnoses, maps, bool(o.get("valid_longitudinal")))

"""Participants TSVs: which (participant, session) pairs to use, their labels and cohorts.

Accepted inputs (FORMATS.md "Participants TSV", ClinicaDL's conventions):
- a TSV file with `participant_id`, `session_id` and label columns;
- a directory with one TSV per diagnosis (`AD.tsv`, `CN.tsv`, ...; `AD_baseline.tsv` with baseline);
- the `test` folder of a split directory (per-diagnosis files, or `test.tsv` / `test_baseline.tsv`);
- multi-cohort: TSVs listing, per cohort, its CAPS and its participants TSV.

    >>> rows = "participant_id\\tsession_id\\tdiagnosis\\nsub-01\\tses-M000\\tAD\\nsub-02\\tses-M000\\tMCI\\n"
    >>> _ = Path("participants.tsv").write_text(rows + "sub-03\\tses-M000\\tCN\\n")
    >>> load_participants(Path("participants.tsv"), "diagnosis", diagnoses=["AD", "CN"]).participant_id.tolist()
    ['sub-01', 'sub-03']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from neuroexec.data.caps import CapsLayout
from neuroexec.errors import InputError
from neuroexec.preprocessings import T1_LINEAR, Preprocessing
from neuroexec.spec.model import SINGLE_COHORT  # noqa: F401 - re-exported

MAX_LISTED = 20
_NOT_DIAGNOSES = {"train", "validation", "test", "labels", "participants", "data", "missing_mods"}


def list_lines(lines: Sequence[str], limit: int = MAX_LISTED) -> str:
    """Indented lines, capped at `limit` with a final "... and N more"."""
    shown = [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  ... and {len(lines) - limit} more")
    return "\n".join(shown)


def session_key(session: str) -> tuple[int, str]:
    """Sort key putting ses-M006 before ses-M012 whatever the zero padding."""
    digits = re.findall(r"\d+", str(session))
    return (int(digits[0]) if digits else 0, str(session))


def read_tsv(path: Path) -> pd.DataFrame:
    """Read one TSV with string ids; InputError when it cannot be parsed or lacks the id columns."""
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
    except FileNotFoundError:
        raise InputError(path, "participants TSV not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read as a tab-separated table: {exc}") from None
    missing = [c for c in ("participant_id", "session_id") if c not in frame.columns]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {', '.join(missing)}; found columns: {', '.join(map(str, frame.columns))}",
        )
    return frame


def _diagnosis_files(folder: Path, baseline: bool) -> dict[str, Path]:
    files = {}
    for p in sorted(folder.glob("*.tsv")):
        stem = p.stem
        is_baseline = stem.endswith("_baseline")
        name = stem[: -len("_baseline")] if is_baseline else stem
        if name.lower() in _NOT_DIAGNOSES or is_baseline != baseline:
            continue
        files[name] = p
    return files


def _read_directory(folder: Path, diagnoses: list[str] | None, baseline: bool) -> pd.DataFrame:
    files = _diagnosis_files(folder, baseline) or _diagnosis_files(folder, not baseline)
    if not files:
        for name in ["test_baseline.tsv", "test.tsv"] if baseline else ["test.tsv", "test_baseline.tsv"]:
            if (folder / name).is_file():
                return read_tsv(folder / name)
        raise InputError(
            folder, "no participants TSV in this folder (expected <diagnosis>.tsv files or test.tsv)"
        )
    wanted = diagnoses if diagnoses is not None else list(files)
    unknown = [d for d in wanted if d not in files]
    if unknown:
        raise InputError(
            folder,
            f"no TSV for diagnos{'es' if len(unknown) > 1 else 'is'} {', '.join(unknown)}; "
            f"available: {', '.join(files)}",
            field="diagnoses",
        )
    frames = []
    for d in wanted:
        frame = read_tsv(files[d])
        if "diagnosis" not in frame.columns:
            frame["diagnosis"] = d
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _keep_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame["session_id"].map(session_key)
    first = (
        frame.assign(_k=order).sort_values("_k", kind="stable").groupby("participant_id", sort=False).head(1)
    )
    return frame.loc[sorted(first.index)]


def load_participants(
    path: Path,
    label: str | None = None,
    diagnoses: list[str] | None = None,
    baseline: bool = False,
    partial: bool = False,
) -> pd.DataFrame:
    """Read a participants TSV (file, per-diagnosis folder or split `test` folder), checked.

    `diagnoses` keeps rows whose label (or, when the label column lacks a requested value, whose
    `diagnosis`) is listed; `baseline` keeps the first session of each participant (or reads the
    `*_baseline.tsv` files of a folder); `partial` (one cohort of several) lets the file lack some of the
    diagnoses, or keep no row (dataset_frame checks the cohorts together). Returns
    participant_id, session_id first, then the other columns (label, cohort, ...), index 0..n-1.

    >>> _ = Path("p.tsv").write_text("participant_id\\tsession_id\\tdiagnosis\\nsub-01\\tses-M006\\tAD\\n")
    >>> with Path("p.tsv").open("a") as f:
    ...     print("sub-01\\tses-M000\\tAD", file=f)
    >>> load_participants(Path("p.tsv"), "diagnosis", baseline=True).session_id.tolist()
    ['ses-M000']
    """
    path = Path(path)
    if path.is_dir():
        frame = _read_directory(path, diagnoses, baseline)
    else:
        frame = read_tsv(path)
        if baseline:
            frame = _keep_baseline(frame)
    return validate_participants(frame, path, label, diagnoses, partial)


def _diagnoses_column(frame: pd.DataFrame, label: str | None, diagnoses: list[str]) -> str | None:
    """The column a `diagnoses` filter reads: the label column when it holds every requested value
    (label = "dx_3class", diagnoses = ["AD", "CN"]), else `diagnosis` as in ClinicaDL (a regression on
    age filtered on diagnoses), else the label column (whose missing values are then reported)."""
    if label is not None and label != "diagnosis" and label in frame.columns:
        if set(diagnoses) <= set(frame[label].dropna().astype(str)):
            return label
    return "diagnosis" if "diagnosis" in frame.columns else label


def validate_participants(
    frame: pd.DataFrame,
    path: Path | None,
    label: str | None = None,
    diagnoses: list[str] | None = None,
    partial: bool = False,
) -> pd.DataFrame:
    """The checks and filter of load_participants on a frame already read (`path` names it in errors)."""
    frame = frame.copy()
    frame["participant_id"] = frame["participant_id"].astype(str)
    frame["session_id"] = frame["session_id"].astype(str)

    if label is not None and label not in frame.columns:
        raise InputError(
            path,
            f"no column {label!r} for the label; found columns: {', '.join(map(str, frame.columns))}",
            "label",
        )
    dup = frame[frame.duplicated(["participant_id", "session_id"], keep=False)]
    if len(dup):
        pairs = sorted({f"{p} {s}" for p, s in zip(dup["participant_id"], dup["session_id"])})
        raise InputError(
            path, f"{len(pairs)} duplicated (participant_id, session_id) row(s):\n{list_lines(pairs)}"
        )

    if diagnoses is not None:
        column = _diagnoses_column(frame, label, diagnoses)
        if column is None:
            raise InputError(path, "a diagnoses filter needs a 'diagnosis' (or label) column", "diagnoses")
        present = set(frame[column].dropna().astype(str))
        unknown = [d for d in diagnoses if d not in present]
        if unknown and not partial:
            raise InputError(
                path,
                f"requested diagnos{'es' if len(unknown) > 1 else 'is'} {', '.join(unknown)} not found in column "
                f"{column!r} (values: {', '.join(sorted(present))})",
                "diagnoses",
            )
        frame = frame[frame[column].astype(str).isin(diagnoses)]
    if frame.empty and not partial:
        raise InputError(path, "no (participant, session) left after filtering")
    if label is not None:
        bad = frame[frame[label].isna()]
        if len(bad):
            rows = [f"{p} {s}" for p, s in zip(bad["participant_id"], bad["session_id"])]
            raise InputError(
                path, f"{len(rows)} row(s) without a value for {label!r}:\n{list_lines(rows)}", "label"
            )
    first = ["participant_id", "session_id"]
    return frame[first + [c for c in frame.columns if c not in first]].reset_index(drop=True)


def combine_cohorts(
    cohorts: Iterable[tuple[str, Path, Path] | tuple[str, Path, Path, list[str] | None]],
    label: str | None = None,
    diagnoses: list[str] | None = None,
    baseline: bool = False,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Load several cohorts given as (name, caps_dir, participants_tsv[, cohort_diagnoses]).

    A cohort's own diagnoses (if given) are intersected with `diagnoses`; a cohort left with none is
    skipped. Returns one frame with a `cohort` column and {cohort: caps_dir}.

    >>> _ = Path("adni.tsv").write_text("participant_id\\tsession_id\\tdiagnosis\\nsub-01\\tses-M000\\tAD\\n")
    >>> frame, caps = combine_cohorts([("adni", Path("caps_adni"), Path("adni.tsv"))], "diagnosis")
    >>> frame.cohort.tolist(), caps
    (['adni'], {'adni': PosixPath('caps_adni')})
    """
    frames, caps_by_cohort = [], {}
    for entry in cohorts:
        name, caps, tsv = entry[0], Path(entry[1]), Path(entry[2])
        own = entry[3] if len(entry) > 3 else None
        wanted = diagnoses
        if own is not None:
            wanted = [d for d in own if diagnoses is None or d in diagnoses]
            if not wanted:
                continue
        if name in caps_by_cohort:
            raise InputError(tsv, f"cohort {name!r} is listed twice", "cohort")
        frame = load_participants(tsv, label, wanted, baseline)
        frame["cohort"] = name
        frames.append(frame)
        caps_by_cohort[name] = caps
    if not frames:
        raise InputError(None, f"no cohort has any of the diagnoses {diagnoses}", "diagnoses")
    frame = pd.concat(frames, ignore_index=True)
    dup = frame[frame.duplicated(["participant_id", "session_id"], keep=False)]
    if len(dup):
        rows = sorted(
            {f"{p} {s} ({c})" for p, s, c in zip(dup["participant_id"], dup["session_id"], dup["cohort"])}
        )
        raise InputError(None, f"{len(rows)} session(s) appear in more than one cohort:\n{list_lines(rows)}")
    return frame, caps_by_cohort


def read_cohort_table(path: Path, need_diagnoses: bool, field: str | None = None) -> pd.DataFrame:
    """One of ClinicaDL's multi-cohort TSVs, checked: cohort, path (and diagnoses when `need_diagnoses`);
    `field` (the flag that gave it) is named in errors."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str)
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"cannot read the multi-cohort TSV: {exc}", field) from None
    need = ["cohort", "path"] + (["diagnoses"] if need_diagnoses else [])
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError(
            path, f"multi-cohort TSV needs columns {', '.join(need)}; missing {', '.join(missing)}", field
        )
    return table


def cohort_path(base: Path, value: str) -> Path:
    """A path of the cohort table `base` (`~` expanded): a relative one is read relative to the table's
    folder."""
    p = Path(str(value).strip()).expanduser()
    return p if p.is_absolute() else base.parent / p


def load_multi_cohort(
    caps_tsv: Path,
    participants_tsv: Path,
    label: str | None = None,
    diagnoses: list[str] | None = None,
    baseline: bool = False,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """ClinicaDL's multi-cohort convention: `caps_tsv` has columns cohort, path (a CAPS per cohort);
    `participants_tsv` has cohort, path (a TSV or folder per cohort) and diagnoses ("AD,CN").

    >>> _ = Path("adni.tsv").write_text("participant_id\\tsession_id\\tdiagnosis\\nsub-01\\tses-M000\\tCN\\n")
    >>> _ = Path("caps.tsv").write_text("cohort\\tpath\\nadni\\tcaps_adni\\n")
    >>> _ = Path("tsv.tsv").write_text("cohort\\tpath\\tdiagnoses\\nadni\\tadni.tsv\\tCN\\n")
    >>> frame, caps = load_multi_cohort(Path("caps.tsv"), Path("tsv.tsv"), "diagnosis")
    >>> frame.cohort.tolist(), caps
    (['adni'], {'adni': PosixPath('caps_adni')})
    """
    caps_table = read_cohort_table(Path(caps_tsv), need_diagnoses=False)
    tsv_table = read_cohort_table(Path(participants_tsv), need_diagnoses=True)
    caps = {str(c): cohort_path(Path(caps_tsv), p) for c, p in zip(caps_table["cohort"], caps_table["path"])}
    missing = [c for c in tsv_table["cohort"] if c not in caps]
    if missing:
        raise InputError(caps_tsv, f"no CAPS listed for cohort(s) {', '.join(missing)}", "cohort")
    cohorts = []
    for c, p, d in zip(tsv_table["cohort"], tsv_table["path"], tsv_table["diagnoses"]):
        own = [x.strip() for x in str(d).split(",") if x.strip()] if isinstance(d, str) else None
        cohorts.append((str(c), caps[str(c)], cohort_path(Path(participants_tsv), p), own))
    return combine_cohorts(cohorts, label, diagnoses, baseline)


def as_caps_by_cohort(caps: Path | str | CapsLayout | Mapping[str, Path | CapsLayout]) -> dict[str, Path]:
    """A single CAPS path becomes {"single": path}; a mapping is returned as Paths (of its layouts)."""
    return {c: layout.root for c, layout in caps_layouts(caps).items()}


def caps_layouts(
    caps: Path | str | CapsLayout | Mapping[str, Path | CapsLayout], preprocessing: Preprocessing = T1_LINEAR
) -> dict[str, CapsLayout]:
    """Cohort -> CapsLayout: a CAPS path reads `preprocessing`, a CapsLayout its own.

    >>> pet = Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons")
    >>> caps_layouts({"A": CapsLayout(Path("a"), pet), "B": Path("b")})["A"].preprocessing.name
    'pet-linear'
    """
    items = caps.items() if isinstance(caps, Mapping) else [(SINGLE_COHORT, caps)]
    return {str(c): v if isinstance(v, CapsLayout) else CapsLayout(Path(v), preprocessing) for c, v in items}


def cohort_of(row: Mapping, caps_by_cohort: Mapping[str, Path]) -> str:
    """Cohort of a row: its `cohort` value, or the only cohort when there is one."""
    cohort = row.get("cohort")
    if cohort is None or (isinstance(cohort, float) and pd.isna(cohort)):
        if len(caps_by_cohort) == 1:
            return next(iter(caps_by_cohort))
        raise InputError(
            None, f"row {row.get('participant_id')} {row.get('session_id')} has no cohort", "cohort"
        )
    if str(cohort) not in caps_by_cohort:
        if len(caps_by_cohort) == 1:
            return next(iter(caps_by_cohort))
        raise InputError(None, f"unknown cohort {cohort!r}; known: {', '.join(caps_by_cohort)}", "cohort")
    return str(cohort)


def check_images_exist(
    frame: pd.DataFrame,
    caps_by_cohort: Path | Mapping[str, Path],
    uncropped: bool = False,
    preprocessing: Preprocessing = T1_LINEAR,
) -> None:
    """Raise one InputError listing every session whose NIfTI (t1-linear by default) is missing or
    ambiguous, naming the file expected and the pattern looked for.

    >>> frame = pd.DataFrame({"participant_id": ["sub-01"], "session_id": ["ses-M000"]})
    >>> check_images_exist(frame, Path("caps"))  # an empty CAPS
    Traceback (most recent call last):
    neuroexec.errors.InputError: caps: 1 image(s) not found in the CAPS:
      sub-01 ses-M000: missing, expected caps/subjects/sub-01/ses-M000/t1_linear/sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz (looked for *space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz)
    """
    caps_by_cohort = as_caps_by_cohort(caps_by_cohort)
    layouts = {c: CapsLayout(p, preprocessing) for c, p in caps_by_cohort.items()}
    problems = []
    for row in frame.to_dict("records"):
        layout = layouts[cohort_of(row, caps_by_cohort)]
        p, s = row["participant_id"], row["session_id"]
        found = layout.find_nifti(p, s, uncropped)
        if len(found) != 1:
            why = "missing" if not found else f"{len(found)} matches"
            expected = layout.image_dir(p, s) / layout.nifti_name(p, s, uncropped)
            problems.append(
                f"{p} {s}: {why}, expected {expected} (looked for {preprocessing.glob(uncropped)})"
            )
    if problems:
        where = next(iter(caps_by_cohort.values())) if len(caps_by_cohort) == 1 else None
        raise InputError(where, f"{len(problems)} image(s) not found in the CAPS:\n{list_lines(problems)}")


def encode_labels(values: Iterable) -> dict[str, int]:
    """ClinicaDL's label_code: sorted distinct labels -> 0..n-1 (keys as strings).

    >>> encode_labels(["CN", "AD", "CN"])
    {'AD': 0, 'CN': 1}
    """
    distinct = sorted({v for v in values if not (isinstance(v, float) and pd.isna(v))})
    return {str(v): i for i, v in enumerate(distinct)}

"""Train/validation splits at participant level: made here (seeded, stratified) or read from a
ClinicaDL split directory (FORMATS.md "Split directories").

    >>> ids = [f"sub-{i:02d}" for i in range(10)]
    >>> frame = pd.DataFrame({"participant_id": ids, "session_id": "ses-M000", "diagnosis": ["AD", "CN"] * 5})
    >>> train, validation = make_splits(frame, n_splits=5, label="diagnosis", seed=0)[0]
    >>> len(train), sorted(validation.diagnosis)
    (8, ['AD', 'CN'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuroexec.data.participants import list_lines, load_participants, session_key, validate_participants
from neuroexec.errors import InputError

SINGLE_SPLIT_VALIDATION = 0.2  # n_splits = 1: one split holding out 20% of each stratum
_MAX_STRATA_FOR_NUMERIC = 5


def _strata(per_participant: pd.Series) -> pd.Series:
    """Stratum of each participant: the label itself, or a quantile bin for a numeric label with many
    values (regression), so that every fold sees the whole range."""
    values = per_participant
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > _MAX_STRATA_FOR_NUMERIC:
        bins = pd.qcut(values.rank(method="first"), q=_MAX_STRATA_FOR_NUMERIC, labels=False)
        return bins.astype(int).astype(str)
    return values.astype(str)


def _participant_labels(frame: pd.DataFrame, label: str | None) -> pd.Series:
    """Stratum per participant (label of their first session), indexed by participant, sorted by id."""
    participants = sorted(frame["participant_id"].astype(str).unique())
    if label is None:
        return pd.Series("all", index=participants)
    if label not in frame.columns:
        raise InputError(None, f"cannot stratify on {label!r}: no such column", "label")
    order = frame["session_id"].map(session_key)
    first = frame.assign(_k=order).sort_values("_k", kind="stable").groupby("participant_id").head(1)
    labels = first.set_index(first["participant_id"].astype(str))[label]
    return _strata(labels.loc[participants])


def make_splits(
    frame: pd.DataFrame, n_splits: int, label: str | None, seed: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(train, validation) frames, all sessions of a participant on one side, stratified on `label`.

    n_splits >= 2: k-fold, each participant in exactly one validation fold. n_splits = 1: a single
    split with 20% of the participants of each stratum (at least one) in validation. Within a stratum,
    participants are shuffled with `seed` and dealt to folds in turn (fold counts within one of the
    ideal); the dealing continues across strata so that fold sizes stay balanced too.

    >>> ids = [f"sub-{i:02d}" for i in range(10)]
    >>> frame = pd.DataFrame({"participant_id": ids, "session_id": "ses-M000", "diagnosis": ["AD", "CN"] * 5})
    >>> [len(v) for _, v in make_splits(frame, 2, "diagnosis", seed=0)]
    [5, 5]
    """
    if n_splits < 1:
        raise InputError(None, f"n_splits must be >= 1, got {n_splits}", "n_splits")
    strata = _participant_labels(frame, label)
    rng = np.random.default_rng(seed)
    needed = n_splits if n_splits >= 2 else 2
    counts = strata.value_counts().sort_index()
    too_few = counts[counts < needed]
    if len(too_few):
        lines = [f"{label or 'all'} = {k}: {v} participant(s)" for k, v in too_few.items()]
        raise InputError(
            None,
            f"too few participants to make {n_splits} split(s): each class needs at least {needed}:\n"
            f"{list_lines(lines)}",
            "n_splits",
        )

    fold_of: dict[str, int] = {}
    offset = 0
    for stratum in counts.index:
        members = np.array(strata.index[strata == stratum])
        members = members[rng.permutation(len(members))]
        if n_splits >= 2:
            for i, participant in enumerate(members):
                fold_of[participant] = (offset + i) % n_splits
            offset = (offset + len(members)) % n_splits
        else:
            n_valid = min(len(members) - 1, max(1, round(SINGLE_SPLIT_VALIDATION * len(members))))
            for i, participant in enumerate(members):
                fold_of[participant] = 0 if i < n_valid else -1

    folds = frame["participant_id"].astype(str).map(fold_of)
    return [
        (frame[folds != k].reset_index(drop=True), frame[folds == k].reset_index(drop=True))
        for k in range(n_splits)
    ]


def split_folder(directory: Path, i: int) -> Path:
    """`<directory>/split-<i>/` of a split directory (ClinicaDL's `tsvtools split` layout; not a MAPS)."""
    return Path(directory) / f"split-{i}"


def split_folders(directory: Path) -> list[Path]:
    """The `split-<i>/` folders of a split directory, sorted by name."""
    return sorted(p for p in Path(directory).glob("split-*") if p.is_dir())


def existing_split_folder(path: Path, n_splits: int, i: int) -> Path:
    """The folder of split i of a split directory: `split-<i>/`, or for one split the directory itself;
    an InputError naming the folders found when it lacks it."""
    folder = split_folder(path, i)
    if folder.is_dir():
        return folder
    if n_splits == 1:
        return path
    found = [p.name for p in split_folders(path)]
    raise InputError(
        path,
        f"split directory lacks split-{i}/ (n_splits = {n_splits}); found: {', '.join(found) or 'no split-* folder'}",
    )


def _with_labels(frame: pd.DataFrame, folder: Path, root: Path) -> pd.DataFrame:
    # Labels may live in a labels.tsv beside the split files: add the columns the split TSV lacks.
    for where in (folder, root, root.parent):
        labels_tsv = where / "labels.tsv"
        if labels_tsv.is_file():
            labels = load_participants(labels_tsv)
            extra = [c for c in labels.columns if c not in frame.columns]
            if extra:
                frame = frame.merge(labels[["participant_id", "session_id", *extra]], how="left")
            break
    return frame


def read_split_side(folder: Path, name: str, root: Path) -> tuple[pd.DataFrame, Path] | None:
    """One side of a split folder of the split directory `root` as read_split_directory reads it, and the
    file read: `name` (a missing `*_baseline.tsv` made from the first sessions of its `*.tsv`), with the
    columns of a labels.tsv beside it; None when neither file is there."""
    found = _side_file(folder, name)
    if found is None:
        return None
    file, first_sessions = found
    return _with_labels(load_participants(file, baseline=first_sessions), folder, root), file


def _side_file(folder: Path, name: str) -> tuple[Path, bool] | None:
    """The file of one side of a split and whether to keep only first sessions: `<side>_baseline.tsv`
    when asked for and present, else `<side>.tsv` reduced to each participant's first session (what
    ClinicaDL's baseline file holds), so a directory with only train.tsv / validation.tsv is usable."""
    if (folder / name).is_file():
        return folder / name, False
    if name.endswith("_baseline.tsv"):
        longitudinal = folder / name.replace("_baseline.tsv", ".tsv")
        if longitudinal.is_file():
            return longitudinal, True
    return None


def read_split_directory(
    path: Path,
    n_splits: int,
    baseline: bool = False,
    valid_longitudinal: bool = False,
    label: str | None = None,
    diagnoses: list[str] | None = None,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(train, validation) per split from `split-<i>/` folders (or, for one split, the folder itself):
    `train.tsv` (`train_baseline.tsv` with baseline) and `validation_baseline.tsv` (`validation.tsv`
    with valid_longitudinal). A missing `*_baseline.tsv` is replaced by the first session of each
    participant of its `*.tsv`. A participant on both sides is an error.

    >>> for i, (train, validation) in enumerate([("sub-01", "sub-02"), ("sub-02", "sub-01")]):
    ...     Path(f"split/2_fold/split-{i}").mkdir(parents=True)
    ...     for name, who in (("train", train), ("validation", validation)):
    ...         rows = f"participant_id\\tsession_id\\tdiagnosis\\n{who}\\tses-M000\\tAD\\n{who}\\tses-M006\\tAD\\n"
    ...         _ = Path(f"split/2_fold/split-{i}/{name}.tsv").write_text(rows)
    >>> train, validation = read_split_directory(Path("split/2_fold"), 2, label="diagnosis")[0]
    >>> train.session_id.tolist(), validation.session_id.tolist()  # validation: baseline sessions only
    (['ses-M000', 'ses-M006'], ['ses-M000'])
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "split directory not found")
    train_name = "train_baseline.tsv" if baseline else "train.tsv"
    valid_name = "validation.tsv" if valid_longitudinal else "validation_baseline.tsv"
    result = []
    folders = [existing_split_folder(path, n_splits, i) for i in range(n_splits)]  # all there before reading
    for i, folder in enumerate(folders):
        found = {name: read_split_side(folder, name, path) for name in (train_name, valid_name)}
        missing = [n for n, f in found.items() if f is None]
        if missing:
            present = sorted(p.name for p in folder.glob("*.tsv"))
            raise InputError(
                folder,
                f"missing {', '.join(missing)} (found: {', '.join(present) or 'no TSV'})",
                f"split-{i}",
            )
        train, valid = (
            validate_participants(frame, file, label, diagnoses) for frame, file in found.values()
        )
        leak = sorted(set(train["participant_id"]) & set(valid["participant_id"]))
        if leak:
            raise InputError(
                folder,
                f"{len(leak)} participant(s) in both {found[train_name][1].name} and "
                f"{found[valid_name][1].name}:\n{list_lines(leak)}",
            )
        result.append((train, valid))
    return result

"""ClinicaDL's split directory (TSV_DIRECTORY of `train`) as the spec reads it: the folder holding its
split-<i>/, its split count and every training session.

>>> for i in range(2):
...     Path(f"split/2_fold/split-{i}").mkdir(parents=True)
...     for side, who in (("train", i), ("validation", 1 - i)):
...         _ = Path(f"split/2_fold/split-{i}/{side}.tsv").write_text(f"participant_id\\tsession_id\\nsub-{who}\\tses-M000\\n")
>>> folder, n = split_directory(Path("split"))
>>> folder.name, n, training_sessions(Path("split"), folder).participant_id.tolist()
('2_fold', 2, ['sub-0', 'sub-1'])
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neuroexec import atomic
from neuroexec.data.participants import read_tsv
from neuroexec.data.splits import split_folder, split_folders
from neuroexec.errors import InputError


def split_directory(tsv_dir: Path) -> tuple[Path, int]:
    """The folder holding split-<i>/ (the TSV_DIRECTORY or its single k-fold subfolder) and its split count;
    a folder with train.tsv + validation TSVs directly is one split."""
    if not tsv_dir.is_dir():
        raise InputError(tsv_dir, "TSV_DIRECTORY not found (expected a split directory)", "TSV_DIRECTORY")
    for folder in [tsv_dir, *sorted(p for p in tsv_dir.iterdir() if p.is_dir())]:
        n = len(split_folders(folder))
        if n:
            return folder, n
    if (tsv_dir / "train.tsv").is_file() and any(
        (tsv_dir / v).is_file() for v in ("validation.tsv", "validation_baseline.tsv")
    ):
        return tsv_dir, 1
    raise InputError(
        tsv_dir,
        "not a split directory: no split-<i>/ folder and no train.tsv + validation TSV",
        "TSV_DIRECTORY",
    )


def _listed_sessions(tsv_dir: Path, splits_dir: Path) -> Path | None:
    """`<tsv_dir>/train.tsv` beside the k-fold folder (`tsvtools split`'s list of every training
    session), else None."""
    listed = tsv_dir / "train.tsv"
    return listed if listed.is_file() and splits_dir != tsv_dir else None


def training_participants(tsv_dir: Path, splits_dir: Path, out: Path) -> Path:
    """All training sessions (training_sessions) written to `out`, or `<tsv_dir>/train.tsv` itself."""
    listed = _listed_sessions(tsv_dir, splits_dir)
    if listed is not None:
        return listed
    write_if_changed(out, training_sessions(tsv_dir, splits_dir))
    return out


def training_sessions(tsv_dir: Path, splits_dir: Path) -> pd.DataFrame:
    """All training sessions: `<tsv_dir>/train.tsv`, else the union of split-0's train and validation
    TSVs, with the columns of the split directory's labels.tsv."""
    listed = _listed_sessions(tsv_dir, splits_dir)
    if listed is not None:
        return read_tsv(listed)
    first = split_folder(splits_dir, 0) if split_folder(splits_dir, 0).is_dir() else splits_dir
    names = ["train.tsv", "validation.tsv", "validation_baseline.tsv"]
    frames = [read_tsv(first / n) for n in names if (first / n).is_file()]
    union = pd.concat(frames, ignore_index=True).drop_duplicates(["participant_id", "session_id"])
    labels = splits_dir / "labels.tsv"
    if labels.is_file():
        extra = read_tsv(labels)
        union = union.merge(
            extra[
                [c for c in extra.columns if c not in union.columns or c in ("participant_id", "session_id")]
            ],
            how="left",
        )
    return union.reset_index(drop=True)


def write_if_changed(out: Path, frame: pd.DataFrame) -> None:
    """Write `frame` to the TSV `out` unless it already holds exactly that text (its time stamp then stays)."""
    text = frame.to_csv(sep="\t", index=False, na_rep="")  # as atomic.write_tsv writes it
    if not out.is_file() or out.read_text() != text:
        atomic.write_text(out, text)

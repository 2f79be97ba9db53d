"""The split tables of a MAPS, as ClinicaDL writes them: groups/train+validation.tsv (every training
session), groups/train|validation/split-<i>/data.tsv and the training groups' maps.json records. The
split step (`model.M.split`) writes them from its task; training reads them back
(`neuroexec.training.task.split_frames`), predict's leakage check reads train+validation.tsv.

>>> from neuroexec.data.synthetic import generate_atrophy_dataset
>>> from neuroexec.spec import load_spec
>>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n[models.cnn]\\n'
>>> _ = Path("spec.toml").write_text(toml + 'maps = "maps/cnn"\\ndataset = "demo"\\nsplit = { n_splits = 2 }\\n')
>>> spec = load_spec(Path("spec.toml"))
>>> _ = generate_atrophy_dataset(spec.datasets["demo"].caps, subjects=8, resolution_mm=8.0)  # its generate step
>>> write_split_tables(SplitTask(spec.models["cnn"], spec.datasets["demo"]))
{'participants': 8, 'sessions': 8, 'splits': 2}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neuroexec import atomic
from neuroexec.data.splits import make_splits, read_split_directory
from neuroexec.data.tasks import SplitTask, dataset_frame
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout


def write_split_tables(task: SplitTask) -> dict:
    """Read the training participants of `task.model` (images checked), split them at participant level
    (or read the user's split.directory) and write the MAPS's split tables and training-group records;
    returns the counts the state record keeps."""
    model, ds, label = task.model, task.dataset, task.label
    maps = MapsLayout(model.maps)
    frame = task.frame()
    if model.split.directory is not None:
        # Labels and the diagnoses filter come from the dataset's participants (split files may hold ids only).
        pairs = read_split_directory(
            model.split.directory, model.split.n_splits, valid_longitudinal=model.split.valid_longitudinal
        )
        everyone = dataset_frame(ds, None, None, check_images=False)
        pairs = [
            tuple(_in_dataset(part, frame, everyone, model.split.directory, i))
            for i, part in enumerate(pairs)
        ]
    else:
        pairs = make_splits(frame, model.split.n_splits, label=label, seed=model.split.seed)
    # The diagnosis column too, whatever the task: ClinicaDL's predict filters a MAPS's data on the
    # diagnoses in maps.json, which are read from it.
    wanted = ("participant_id", "session_id", "cohort", label, "diagnosis")
    columns = [c for c in dict.fromkeys(wanted) if c and c in frame.columns]
    atomic.write_tsv(maps.train_validation_tsv, frame[columns])
    for i, (train, valid) in enumerate(pairs):
        atomic.write_tsv(maps.split_group_tsv("train", i), _columns_of(train, frame, columns))
        atomic.write_tsv(maps.split_group_tsv("validation", i), _columns_of(valid, frame, columns))
    if ds.multi_cohort:
        cohorts = pd.DataFrame(
            {"cohort": [c.name for c in ds.cohorts], "path": [str(c.caps) for c in ds.cohorts]}
        )
        atomic.write_tsv(maps.caps_cohorts_tsv, cohorts)
    record = {"caps_directory": str(maps.caps_directory(ds)), "multi_cohort": ds.multi_cohort}
    for group in ("train", "validation"):
        atomic.write_json(maps.group_maps_json(group), record)
        for i in range(len(pairs)):  # ClinicaDL reads the training groups' record per split
            atomic.write_json(maps.split_group_maps_json(group, i), record)
    return {
        "participants": int(frame["participant_id"].nunique()),
        "sessions": len(frame),
        "splits": len(pairs),
    }


def _in_dataset(part: tuple, frame: pd.DataFrame, everyone: pd.DataFrame, directory: Path, split: int):
    """The (train, validation) sessions of a user split that are in the training data: sessions the
    diagnoses filter removed are dropped; sessions absent from the dataset's participants are an error."""
    keys = ["participant_id", "session_id"]
    kept = set(map(tuple, frame[keys].astype(str).to_numpy()))
    known = set(map(tuple, everyone[keys].astype(str).to_numpy()))
    for side in part:
        pairs = list(map(tuple, side[keys].astype(str).to_numpy()))
        unknown = [f"{p} {s}" for p, s in pairs if (p, s) not in known]
        if unknown:
            listed = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise InputError(directory, f"split-{split} lists {len(unknown)} session(s) that are not in the "
                             f"dataset's participants: {listed}", "split.directory")  # fmt: skip
        yield side[[pair in kept for pair in pairs]]


def _columns_of(part: pd.DataFrame, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The split's sessions with the participants frame's columns (labels come from the dataset)."""
    keys = ["participant_id", "session_id"]
    return part[keys].astype(str).merge(frame[columns].astype({k: str for k in keys}), on=keys, how="left")

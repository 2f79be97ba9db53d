"""What a data group recorded in a MAPS (groups/<G>/maps.json and data.tsv), whether the spec's group is
the same data, and what replacing it removes.

A group's data is its sessions: the same CAPS (found again after the project folder moved: the record
keeps each path relative to the MAPS too) and the same participant, session and label rows. Anything else
is a redefinition, refused unless `overwrite = true`. Replacing a group removes its old results (planned
`-` lines), except the other splits' with `keep_other_splits`: those stay, and `report` marks them stale.

`why_redefined(maps, group, ds, "diagnosis")` says, for a group whose participants lost a session,
'its data.tsv has 8 sessions, the participants now give 7 (1 dropped: sub-0003 ses-M000)'
(tests/steps/test_group_redefinition.py).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from neuroexec.data.tasks import dataset_frame
from neuroexec.errors import NeuroexecError
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.registry import Removal
from neuroexec.spec.model import Dataset, Group

KEYS = ("participant_id", "session_id")


def record(ds: Dataset, maps: Path) -> dict:
    """What groups/<G>/maps.json says about the data: ClinicaDL's keys (absolute paths), and neuroexec's
    participants and `relative_to_maps` (the same paths seen from the MAPS, which survive a move)."""
    caps = [str(c.caps) for c in ds.cohorts]
    participants = [str(c.participants) for c in ds.cohorts]
    return {
        "caps_directory": caps[0] if not ds.multi_cohort else caps,
        "multi_cohort": ds.multi_cohort,
        "participants": participants,
        "relative_to_maps": {
            "caps": [os.path.relpath(p, maps) for p in caps],
            "participants": [os.path.relpath(p, maps) for p in participants],
        },
    }


def read_record(maps: MapsLayout, group: str) -> dict | None:
    """The recorded groups/<G>/maps.json, or None when the group does not exist."""
    path = maps.group_maps_json(group)
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NeuroexecError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise NeuroexecError(f"{path} is not a JSON object")
    return rec


def recorded_paths(rec: dict, maps: Path, key: str) -> list[str]:
    """Recorded paths of `key` ("caps" or "participants"): each one's path relative to the MAPS where it
    exists (the project folder moved or was copied with its data), else the absolute one."""
    absolute = rec.get("caps_directory") if key == "caps" else rec.get("participants")
    absolute = [str(p) for p in (absolute if isinstance(absolute, list) else [absolute] if absolute else [])]
    relative = (rec.get("relative_to_maps") or {}).get(key) or []
    out = []
    for i, path in enumerate(absolute):
        moved = (maps / relative[i]).resolve() if i < len(relative) else None
        out.append(str(moved) if moved is not None and moved.exists() else path)
    return out


def _same_folder(old: str, rel: str | None, new: Path, maps: Path) -> bool:
    """`new` is the recorded folder: the same path, the same path relative to the MAPS (a moved project)
    or the same folder under another name (a symlink, a mount)."""
    if old == str(new):
        return True
    if rel is not None and os.path.normpath(maps / rel) == os.path.normpath(new):
        return True
    try:
        return os.path.samefile(old, new)
    except OSError:
        return False


def caps_differ(rec: dict, ds: Dataset, maps: Path) -> str | None:
    old = rec.get("caps_directory")
    old = [str(p) for p in (old if isinstance(old, list) else [old])]
    rel = (rec.get("relative_to_maps") or {}).get("caps") or []
    new = [c.caps for c in ds.cohorts]
    if len(old) != len(new) or not all(
        _same_folder(o, rel[i] if i < len(rel) else None, n, maps) for i, (o, n) in enumerate(zip(old, new))
    ):
        shown = old[0] if len(old) == 1 else old
        return f"it was defined with CAPS {shown}"
    return None


def sessions_differ(recorded: pd.DataFrame, frame: pd.DataFrame, label: str | None) -> str | None:
    """How the sessions (and labels) the group would have differ from its recorded data.tsv. Labels are
    compared where both tables have the label column (a ClinicaDL data.tsv may keep only the diagnosis)."""
    if label is not None and not (label in recorded.columns and label in frame.columns):
        label = None
    old = _rows(recorded, label)
    new = _rows(frame, label)
    if old == new and len(recorded) == len(frame):
        return None
    dropped = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    relabelled = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    parts = [
        f"{len(items)} {word}: {', '.join(' '.join(k) for k in items[:3])}{' ...' if len(items) > 3 else ''}"
        for word, items in (("dropped", dropped), ("added", added), (f"with another {label}", relabelled))
        if items
    ]
    if not parts:  # the same sessions and labels, but one of them listed twice
        parts = ["sessions listed another number of times"]
    return f"its data.tsv has {len(recorded)} sessions, the participants now give {len(frame)} ({'; '.join(parts)})"


def _rows(frame: pd.DataFrame, label: str | None) -> dict[tuple[str, str], str | None]:
    values = frame[label] if label is not None else [None] * len(frame)
    rows: dict[tuple[str, str], str | None] = {}
    for pid, sid, value in zip(frame["participant_id"], frame["session_id"], values):
        rows[(str(pid), str(sid))] = None if value is None or pd.isna(value) else str(value)
    return rows


def why_redefined(maps: MapsLayout, group: Group, ds: Dataset, label: str | None) -> str | None:
    """Why the group already in the MAPS is other data than the spec's (None when the same or absent).
    The participants are compared as they are now; a dataset a pending step will (re)generate cannot be
    compared before it exists."""
    rec = read_record(maps, group.name)
    if rec is None:
        return None
    why = caps_differ(rec, ds, maps.root)
    if why:
        return why
    tsv = maps.group_data_tsv(group.name)
    if not tsv.is_file() or not all(c.participants.exists() for c in ds.cohorts):
        return None
    try:
        recorded = pd.read_csv(tsv, sep="\t", dtype=str)
        frame = dataset_frame(ds, label, group.diagnoses, check_images=False)
    except (NeuroexecError, pd.errors.ParserError, pd.errors.EmptyDataError, KeyError):
        return None  # the define step's run names the problem with the participants
    if not set(KEYS) <= set(recorded.columns):
        return f"its {tsv.name} has no participant_id / session_id columns"
    return sessions_differ(recorded, frame, label)


def result_splits(maps: MapsLayout, group: str) -> dict[int, list[Path]]:
    """The result folders of a group in the MAPS (split-<i>/best-<metric>/<G>), per split."""
    found: dict[int, list[Path]] = {}
    for split in maps.splits():
        dirs = [maps.result_dir(split, m, group) for m in maps.best_metrics(split)]
        if dirs := [d for d in dirs if d.is_dir()]:
            found[split] = dirs
    return found


def replaced_results(maps: MapsLayout, group: Group, redefined: bool) -> list[Removal]:
    """What replacing a group with `overwrite = true` removes: the results of the splits it computes
    again, and, when its data changed, those of the other splits too (computed on the old data)."""
    removals = []
    for split, dirs in result_splits(maps, group.name).items():
        if group.splits is None or split in group.splits:
            what = f"results of group {group.name}, split {split} (replaced: overwrite = true)"
        elif redefined and not group.keep_other_splits:
            what = (
                f"results of group {group.name}, split {split} (computed on its old data; "
                f"split {split} is not in groups.{group.name}.splits)"
            )
        else:
            continue
        removals.append(Removal(what, tuple(dirs)))
    return removals


def kept_stale(maps: MapsLayout, group: Group, redefined: bool) -> list[Path]:
    """The result folders a redefinition with `keep_other_splits` leaves in place, computed on the old data."""
    if not (redefined and group.overwrite and group.keep_other_splits and group.splits is not None):
        return []
    found = result_splits(maps, group.name)
    return [d for split, dirs in found.items() if split not in group.splits for d in dirs]


def stale_results(maps: MapsLayout, group: str, model: str) -> set[Path]:
    """Result folders of a group that its last redefinition kept, computed on the old data, and that no
    result step has computed again since (read from the MAPS's state records)."""
    from neuroexec.plan.state import StateStore
    from neuroexec.steps.common import group_id

    try:
        steps = StateStore(maps.root).data["steps"]
    except NeuroexecError:
        return set()
    define = steps.get(group_id(group, model)) or {}
    listed = {maps.root / p for p in (define.get("outputs") or {}).get("stale", [])}
    again = set()
    for step_id, rec in steps.items():
        found = re.search(
            rf"^group\.{re.escape(group)}\..*\[{re.escape(model)}/split-(\d+)/best-([^\]]+)\]$", step_id
        )
        if found and (rec.get("upstream") or {}).get(group_id(group, model)) == define.get("fingerprint"):
            again.add(maps.result_dir(int(found[1]), found[2], group))
    return {p for p in listed - again if p.is_dir()}

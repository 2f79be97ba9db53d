"""neuroexec's record of the tensors it extracted into a CAPS, `tensor_extraction/neuroexec_manifest_<mode>.json`.

`entries` maps each tensor (its path in the CAPS) to what it was made from and with: the NIfTI (mtime,
size), the image shape and the extraction parameters. `pending` lists the tensors an extraction started
writing and has not recorded yet, so that a run killed between two saves still owns what it wrote. A
tensor in neither was not written by neuroexec (ClinicaDL's `prepare-data`, or a deleted manifest):
the plan lists it before an extraction replaces it.

    >>> path = Path("caps/tensor_extraction/neuroexec_manifest_image.json")
    >>> mark_pending(path, ["subjects/a.pt", "subjects/b.pt"])
    >>> _ = save_manifest_entries(path, {"subjects/a.pt": {"size": 1}})
    >>> sorted(owned_keys(read_manifest(path)))
    ['subjects/a.pt', 'subjects/b.pt']
    >>> pending_keys(read_manifest(path))
    {'subjects/b.pt'}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import count
from pathlib import Path

from neuroexec.atomic import write_json
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extraction_plan import ExtractionItem, ExtractionPlan


def read_manifest(path: Path) -> dict:
    """The manifest at `path`; one without entries when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data.get("entries"), dict) else {"entries": {}}
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return {"entries": {}}


def manifest_key(caps: CapsLayout, path: Path) -> str:
    """A tensor's key in its CAPS's manifest: its path in the CAPS."""
    return path.relative_to(caps.root).as_posix()


def pending_keys(manifest: dict) -> set[str]:
    """The tensors an extraction was writing and had not recorded yet."""
    pending = manifest.get("pending")
    return {k for k in pending if isinstance(k, str)} if isinstance(pending, list) else set()


def owned_keys(manifest: dict) -> set[str]:
    """The tensors neuroexec wrote: recorded, or being written by an extraction (killed, maybe)."""
    return set(manifest["entries"]) | pending_keys(manifest)


def mark_pending(path: Path, keys: Iterable[str]) -> None:
    """Record, before an extraction writes them, the tensors it is about to write."""
    manifest = read_manifest(path)
    pending = pending_keys(manifest)
    new = set(keys) - pending - set(manifest["entries"])
    if new:
        _write(path, manifest, pending | new)


def save_manifest_entries(path: Path, entries: dict[str, dict]) -> dict:
    """Add `entries` to the manifest as it is on disk now (another extraction into the same CAPS may
    have recorded its own meanwhile); what they record is no longer pending. Returns the manifest."""
    manifest = read_manifest(path)
    manifest["entries"].update(entries)
    return _write(path, manifest, pending_keys(manifest) - set(manifest["entries"]))


def _write(path: Path, manifest: dict, pending: set[str]) -> dict:
    manifest["version"] = 1
    if pending:
        manifest["pending"] = sorted(pending)
    else:
        manifest.pop("pending", None)
    write_json(path, manifest)
    return manifest


def unrecorded_tensors(plan: ExtractionPlan) -> list[Path]:
    """The tensors already at the paths the extraction `plan` writes that neuroexec did not write (its
    manifest neither records them nor had them pending): a ClinicaDL `prepare-data`, or neuroexec's
    with the manifest deleted. With ClinicaDL's one-file-per-patch layout, a session's patch files
    count together, patch 0 standing for the set as in the manifest."""
    found: list[Path] = []
    owned = {
        c: owned_keys(read_manifest(CapsLayout(p).manifest_json(plan.mode))) for c, p in plan.caps.items()
    }
    for item in plan.items:
        caps = plan.caps_layout(item.cohort)
        if plan.mode == "patch" and plan.layout == "clinicadl":
            first = item.outputs[0]
            if first.exists() and manifest_key(caps, first) not in owned[item.cohort]:
                found += _patch_files(caps, item, plan)
            continue
        if plan.mode == "slice" and plan.layout == "clinicadl":  # any slice index ClinicaDL wrote
            found += [
                f for f in _slice_files(item.outputs[0]) if manifest_key(caps, f) not in owned[item.cohort]
            ]
            continue
        found += [o for o in item.outputs if o.exists() and manifest_key(caps, o) not in owned[item.cohort]]
    return found


def _patch_files(caps: CapsLayout, item: ExtractionItem, plan: ExtractionPlan) -> list[Path]:
    """The one-file-per-patch tensors of a session for the plan's size and stride (patch 0, 1, ...)."""
    files = []
    for k in count():
        path = caps.patch_tensor(item.participant, item.session, plan.size, plan.stride, k, plan.uncropped)
        if not path.exists():
            return files
        files.append(path)
    return files


def _slice_files(first: Path) -> list[Path]:
    """The one-file-per-slice tensors beside slice 0's file (`..._slice-0_T1w.pt`) of the same axis and
    channels, whatever their indices (ClinicaDL leaves out the slices it discards)."""
    head, tail = first.name.rsplit("_slice-0", 1)
    if not first.parent.is_dir():
        return []
    return sorted(
        p
        for p in first.parent.iterdir()
        if p.name.startswith(f"{head}_slice-")
        and p.name.endswith(tail)
        and p.name[len(head) + 7 : len(p.name) - len(tail)].isdigit()
    )


def unrecorded_extract_json(plan: ExtractionPlan, wanted: dict) -> list[Path]:
    """ClinicaDL's `extract_<mode>.json` in the CAPS of `plan` where neuroexec never extracted this mode
    (no manifest), when it records other parameters than the `wanted` record this extraction writes."""
    found = []
    for root in plan.caps.values():
        caps = CapsLayout(root)
        path = caps.extract_json(plan.mode)
        if not path.is_file() or caps.manifest_json(plan.mode).exists():
            continue
        if not record_describes(path, wanted):
            found.append(path)
    return found


# Keys of extract_<mode>.json that do not change the tensors: the record's own name and the NIfTI
# description (derived from the preprocessing), and what a training reads from the tensors rather than
# what the extraction made (ClinicaDL's slice files of discarded [b, e] are a subset of every slice).
_NOT_TENSOR_KEYS = ("extract_json", "file_type", "discarded_slices")


def record_describes(path: Path, wanted: dict) -> bool:
    """Whether the extract_<mode>.json at `path` describes the tensors of the record `wanted`: it has
    every key of `wanted` that makes the tensors, with the same value (a record that differs only in
    its name, its description or discarded_slices is kept, with the settings a training reads from it).

    >>> wanted = {"mode": "slice", "slice_direction": 2, "discarded_slices": [0, 0], "extract_json": "e.json"}
    >>> _ = Path("mine.json").write_text('{"mode": "slice", "slice_direction": 2, "discarded_slices": [9]}')
    >>> record_describes(Path("mine.json"), wanted), record_describes(Path("mine.json"), {**wanted, "slice_direction": 0})
    (True, False)
    """
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(old, dict):
        return False
    plain = json.loads(json.dumps(wanted))
    return all(k in old and old[k] == v for k, v in plain.items() if k not in _NOT_TENSOR_KEYS)

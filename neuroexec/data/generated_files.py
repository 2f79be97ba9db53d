"""What a generation owns in a CAPS: the files it and the extractions made from it write (the images
under their names, the masks, the records), told apart from any other file there (a user's notes), so
that apply regenerates or removes only its own (steps/generate.py, plan/ownership.py)."""

from __future__ import annotations

from pathlib import Path

from neuroexec.atomic import is_temporary
from neuroexec.data.caps import CapsLayout
from neuroexec.data.roi_masks import REGIONS, generated_roi_masks
from neuroexec.generate_keys import ENGINE_KINDS
from neuroexec.spec.generate_kinds import FROM_CAPS

KIND_IMAGE_FOLDERS = ("pet_linear", "t1-linear", "pet-linear", "shepplogan")


def generated_paths(caps: Path) -> tuple[Path, ...]:
    """The folders and files a generation writes into `caps`, with the extractions made from it (not its
    .neuroexec/)."""
    layout = CapsLayout(caps)
    records = (
        layout.generate_data_tsv,
        layout.missing_mods_dir,
        layout.commandline_json,
    )  # ClinicaDL's kinds
    return (
        layout.subjects_dir,
        layout.masks_dir,
        layout.tensor_extraction_dir,
        layout.participants_tsv,
        *records,
    )


def generated_contents(caps: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(what neuroexec made, what it did not) among the files under `generated_paths(caps)`: a session's
    generated image (`t1_linear/<its name>`) and its extracted tensors (`deeplearning_prepare_data/`),
    the region masks, the extraction records and participants.tsv are neuroexec's; any other file (a
    user's notes in a session folder) is not. Folders holding only neuroexec's files are given whole.

    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> caps = generate_atrophy_dataset(tmp_path / "caps", subjects=2, resolution_mm=8.0).caps_dir
    >>> _ = (caps / "subjects" / "sub-0000" / "mine.txt").write_text("mine")
    >>> made, other = generated_contents(caps)
    >>> [p.relative_to(caps).as_posix() for p in other]
    ['subjects/sub-0000/mine.txt']
    >>> sorted(p.relative_to(caps).as_posix() for p in made)[:3]
    ['masks', 'participants.tsv', 'subjects/sub-0000/ses-M000']
    """
    layout = CapsLayout(caps)
    foreign = [
        f
        for root in generated_paths(caps)
        for f in _files(root)
        if not _generated(layout, f) and not is_temporary(f)  # an atomic write's: apply sweeps those
    ]
    made: list[Path] = []
    for root in generated_paths(caps):
        made.extend(_whole_folders(root, set(foreign)))
    return tuple(made), tuple(foreign)


def _files(root: Path) -> list[Path]:
    if root.is_file() or root.is_symlink():
        return [root]
    return sorted(f for f in root.rglob("*") if f.is_file() or f.is_symlink()) if root.is_dir() else []


def _generated(layout: CapsLayout, file: Path) -> bool:
    """Whether `file` is one a generation or an extraction of it writes."""
    if file in (layout.participants_tsv, layout.generate_data_tsv, layout.commandline_json):
        return True
    parts = file.relative_to(layout.root).parts
    if parts[0] == layout.missing_mods_dir.name:
        return len(parts) == 2 and file.suffix == ".tsv"
    if parts[0] == layout.masks_dir.name:
        if len(parts) == 3:
            return file in {
                m
                for kind in (*ENGINE_KINDS, *FROM_CAPS)
                for r in REGIONS
                for uncropped in (False, True)
                for m in generated_roi_masks(layout.root, kind, r, uncropped)
            }
        return len(parts) == 2 and file.name in {layout.mask(r).name for r in REGIONS}
    if parts[0] == layout.tensor_extraction_dir.name:
        return len(parts) == 2 and file.suffix == ".json"
    if len(parts) < 5:
        return False
    participant, session, kind = parts[1], parts[2], parts[3]
    if kind == layout.t1_linear_dir(participant, session).name:
        return len(parts) == 5 and (file.name == layout.nifti_name(participant, session) or _kind_image(file))
    if kind in KIND_IMAGE_FOLDERS:
        return len(parts) == 5 and _kind_image(file)
    return (
        kind
        == layout.tensor_dir(participant, session, "image")
        .relative_to(layout.session_dir(participant, session))
        .parts[0]
    )


def _kind_image(file: Path) -> bool:
    """An image ClinicaDL's generate kinds write in a session: `<participant>_<session>_...nii[.gz]`."""
    participant, session = file.parts[-4], file.parts[-3]
    return file.name.startswith(f"{participant}_{session}_") and file.name.endswith((".nii.gz", ".nii"))


def _whole_folders(root: Path, foreign: set[Path]) -> list[Path]:
    """`root` itself when nothing under it is foreign, else its children treated the same way."""
    if not (root.exists() or root.is_symlink()):
        return []
    if not any(f == root or root in f.parents for f in foreign):
        return [root]
    if not root.is_dir():
        return []
    return [p for child in sorted(root.iterdir()) for p in _whole_folders(child, foreign)]

"""Which ClinicaDL-named ROI masks a generation writes, the one answer that the generate step's outputs,
its writers, the ownership of a generated CAPS's files (data/generated_files.py) and the
plan's ROI check (data/tasks.py) all read: neuroexec's kinds write their region's halves, ClinicaDL's
kinds reading a CAPS the hippocampi (uncropped names with `use_uncropped_image`), shepplogan none.

>>> [p.name for p in generated_roi_masks(Path("caps"), "random", "ventricles", uncropped=True)]
... # doctest: +NORMALIZE_WHITESPACE
['tpl-MNI152NLin2009cSym_res-1x1x1_roi-leftHippocampus_mask.nii.gz',
 'tpl-MNI152NLin2009cSym_res-1x1x1_roi-rightHippocampus_mask.nii.gz']
>>> generated_roi_masks(Path("caps"), "shepplogan", "hippocampus")
()
"""

from __future__ import annotations

from pathlib import Path

from neuroexec.data.caps import ROI_MASK_PATTERNS, ROI_TEMPLATES, CapsLayout
from neuroexec.generate_keys import ENGINE_KINDS
from neuroexec.spec.generate_kinds import FROM_CAPS
from neuroexec.spec.model import Dataset

REGIONS = ("hippocampus", "ventricles")  # neuroexec's kinds' regions
MASK_REGION = "hippocampus"  # the ROI masks of the kinds reading a CAPS: leftHippocampus, rightHippocampus


def roi_names(region: str) -> tuple[str, str]:
    """The ROI names of a region's halves, as its ClinicaDL-named masks call them.

    >>> roi_names("hippocampus")
    ('leftHippocampus', 'rightHippocampus')
    """
    return (f"left{region[:1].upper()}{region[1:]}", f"right{region[:1].upper()}{region[1:]}")


def roi_mask_paths(caps: Path, region: str, cropped: bool = True) -> tuple[Path, Path]:
    """Where the masks of `roi_names(region)` are, as ClinicaDL finds them for cropped (or uncropped)
    t1-linear images: `masks/tpl-MNI152NLin2009cSym/tpl-..._desc-Crop_res-1x1x1_roi-<name>_mask.nii.gz`."""
    return _mask_paths(caps, roi_names(region), cropped)


def generated_roi_names(kind: str, region: str) -> tuple[str, ...]:
    """The ROIs a generation of `kind` writes masks for (`region`: neuroexec's kinds' key)."""
    if kind in ENGINE_KINDS:
        return roi_names(region)
    return roi_names(MASK_REGION) if kind in FROM_CAPS else ()


def generated_roi_masks(caps: Path, kind: str, region: str, uncropped: bool = False) -> tuple[Path, ...]:
    """The ROI masks a generation of `kind` writes into `caps` (`uncropped`: its `use_uncropped_image`,
    read by ClinicaDL's kinds only: neuroexec's write the cropped names)."""
    return _mask_paths(caps, generated_roi_names(kind, region), kind in ENGINE_KINDS or not uncropped)


def dataset_roi_masks(ds: Dataset) -> tuple[Path, ...]:
    """`generated_roi_masks` of a spec Dataset's `generate` (none for a dataset not generated)."""
    g = ds.generate
    return () if g is None else generated_roi_masks(ds.caps, g.kind, g.region, bool(g.use_uncropped_image))


def _mask_paths(caps: Path, names: tuple[str, ...], cropped: bool) -> tuple[Path, ...]:
    layout = CapsLayout(caps)
    template, pattern = ROI_TEMPLATES["t1-linear"], ROI_MASK_PATTERNS["t1-linear"]
    folder = layout.roi_masks_dir(template)
    return tuple(folder / layout.roi_mask_name(template, pattern, n, cropped) for n in names)

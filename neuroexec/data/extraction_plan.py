"""What an extraction would do, image by image: the plan `data/extract.py` makes and runs, and that
`data/extract_manifest.py` reads to tell the tensors neuroexec wrote from those it did not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from neuroexec.data.roi_extract import RoiExtraction, RoiMasks

from neuroexec.data.caps import CapsLayout
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.preprocessings import T1_LINEAR, Preprocessing


@dataclass(frozen=True)
class ExtractionItem:
    cohort: str
    participant: str
    session: str
    nifti: Path
    outputs: tuple[Path, ...]
    reason: str  # "missing", "not recorded", "changed", "parameters changed" or "up to date"


@dataclass
class ExtractionPlan:
    """Per image, what extraction would do, and the parameters it would use."""

    mode: str
    uncropped: bool
    size: int | None
    stride: int | None
    layout: str
    caps: dict[str, Path]
    items: list[ExtractionItem] = field(default_factory=list)
    roi: RoiExtraction | None = None  # roi mode: the regions and where their masks are
    masks: dict[str, RoiMasks] = field(default_factory=dict)  # roi mode: cohort -> its CAPS's masks
    extraction: ExtractionMode | None = None  # the whole mode, with its roi or slice settings
    preprocessing: Preprocessing = T1_LINEAR  # which images of the sessions are read

    def caps_layout(self, cohort: str) -> CapsLayout:
        """The layout of a cohort's CAPS for the plan's preprocessing (its images and tensors)."""
        return CapsLayout(self.caps[cohort], self.preprocessing)

    @property
    def todo(self) -> list[ExtractionItem]:
        return [i for i in self.items if i.reason != "up to date"]


class ExtractionCounts(NamedTuple):
    extracted: int
    up_to_date: int

"""Which tensors a model reads from a CAPS: whole images, 3D patches, regions of interest or 2D slices.

A leaf module (it imports nothing of neuroexec): the spec (`Model.extract_mode`), a MAPS's record
(`MapsInfo.extract_mode`) and the extract step all speak of the same value. Its text is the bracket of
the extract step's id (`dataset.X.extract[patch-s50-t50]`), so it must not change.

>>> mode = ExtractionMode.patch(50, 25)
>>> str(mode)
'patch-s50-t25'
>>> ExtractionMode.parse("patch-s50-t25") == mode
True
>>> ExtractionMode.IMAGE.kind, ExtractionMode.IMAGE.size
('image', None)
>>> str(ExtractionMode.roi(["leftHippocampus", "rightHippocampus"]))
'roi-leftHippocampus+rightHippocampus'
>>> str(ExtractionMode.slice(2, "single"))
'slice-axi-single'

What is read at training time rather than extracted (the slices discarded at both ends, one network
per part) is the model's, not the extraction's: two models that differ only there share their tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

KINDS = ("image", "patch", "roi", "slice")
# ClinicaDL's slice directions: 0 sagittal, 1 coronal, 2 axial, and their names in tensor file names.
SLICE_AXES = {0: "sag", 1: "cor", 2: "axi"}
SLICE_MODES = ("rgb", "single")
_ROI_NAME = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class ExtractionMode:
    kind: str  # one of KINDS
    size: int | None = None  # patch side, in voxels (patches only)
    stride: int | None = None  # step between patches, in voxels (patches only)
    rois: tuple[str, ...] = ()  # region names, in the order of their part index (roi only)
    uncropped_roi: bool = False  # roi only: the masked image at full size, not cropped to the mask's box
    direction: int | None = None  # slice only: 0 sagittal, 1 coronal, 2 axial
    slice_mode: str | None = None  # slice only: "rgb" (three identical channels) or "single"

    IMAGE: ClassVar[ExtractionMode]

    @classmethod
    def patch(cls, size: int, stride: int) -> ExtractionMode:
        return cls("patch", int(size), int(stride))

    @classmethod
    def roi(cls, names, uncropped: bool = False) -> ExtractionMode:
        """Regions of interest by mask name (`..._roi-<name>_mask.nii.gz`), in part-index order.

        >>> ExtractionMode.roi(["hippocampus_left"])
        Traceback (most recent call last):
        ...
        ValueError: ROI names are letters and digits (a BIDS entity value), got 'hippocampus_left'
        """
        names = tuple(str(n) for n in names)
        if not names:
            raise ValueError("roi mode needs at least one region name")
        for name in names:
            if not _ROI_NAME.match(name):
                raise ValueError(f"ROI names are letters and digits (a BIDS entity value), got {name!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"ROI names repeat: {', '.join(names)}")
        return cls("roi", rois=names, uncropped_roi=bool(uncropped))

    @classmethod
    def slice(cls, direction: int, slice_mode: str = "rgb") -> ExtractionMode:
        if int(direction) not in SLICE_AXES:
            raise ValueError(
                f"slice direction must be 0 (sagittal), 1 (coronal) or 2 (axial), got {direction!r}"
            )
        if slice_mode not in SLICE_MODES:
            raise ValueError(f"slice mode must be 'rgb' or 'single', got {slice_mode!r}")
        return cls("slice", direction=int(direction), slice_mode=slice_mode)

    @classmethod
    def of(
        cls,
        mode: str,
        size: int | None = None,
        stride: int | None = None,
        *,
        rois=None,
        uncropped_roi: bool = False,
        direction: int | None = None,
        slice_mode: str | None = None,
    ) -> ExtractionMode:
        """A model's mode with its settings, as a MAPS records them: patches of a size and stride (the
        size when the stride is not given), regions, slices; whole images otherwise.

        >>> str(ExtractionMode.of("patch", 32, None)), str(ExtractionMode.of("roi", rois=["hippocampus"]))
        ('patch-s32-t32', 'roi-hippocampus')
        >>> str(ExtractionMode.of("slice", direction=0))
        'slice-sag-rgb'
        """
        if mode == "patch" and size:
            return cls.patch(size, stride or size)
        if mode == "roi" and rois:
            return cls.roi(rois, uncropped_roi)
        if mode == "slice":
            return cls.slice(0 if direction is None else direction, slice_mode or "rgb")
        return cls.IMAGE

    @classmethod
    def parse(cls, text: str) -> ExtractionMode:
        """The value `str()` wrote; ValueError for anything else.

        >>> ExtractionMode.parse("patch-50-50")
        Traceback (most recent call last):
        ...
        ValueError: not an extraction mode: 'patch-50-50' (expected 'image', 'patch-s<size>-t<stride>', 'roi-<name>[+<name>...][-uncropped]' or 'slice-<sag|cor|axi>-<rgb|single>')
        >>> ExtractionMode.parse("roi-hippocampus-uncropped").uncropped_roi
        True
        >>> ExtractionMode.parse("slice-cor-single").direction
        1
        """
        try:
            return cls._parse(text)
        except ValueError:
            pass
        raise ValueError(
            f"not an extraction mode: {text!r} (expected 'image', 'patch-s<size>-t<stride>', "
            "'roi-<name>[+<name>...][-uncropped]' or 'slice-<sag|cor|axi>-<rgb|single>')"
        )

    @classmethod
    def _parse(cls, text: str) -> ExtractionMode:
        if text == "image":
            return cls.IMAGE
        kind, _, rest = text.partition("-")
        if kind == "patch" and rest.startswith("s"):
            size, _, stride = rest[1:].partition("-t")
            if size.isdigit() and stride.isdigit():
                return cls.patch(int(size), int(stride))
        if kind == "roi" and rest:
            uncropped = rest.endswith("-uncropped")
            names = rest[: -len("-uncropped")] if uncropped else rest
            return cls.roi(names.split("+"), uncropped)
        if kind == "slice":
            axis, _, slice_mode = rest.partition("-")
            by_name = {name: d for d, name in SLICE_AXES.items()}
            if axis in by_name:
                return cls.slice(by_name[axis], slice_mode)
        raise ValueError(text)

    @property
    def is_patch(self) -> bool:
        return self.kind == "patch"

    @property
    def is_roi(self) -> bool:
        return self.kind == "roi"

    @property
    def is_slice(self) -> bool:
        return self.kind == "slice"

    @property
    def has_parts(self) -> bool:
        """Whether an image gives several items (patches, regions, slices), voted back to the image."""
        return self.kind != "image"

    @property
    def axis_name(self) -> str | None:
        """'sag', 'cor' or 'axi' for slices (ClinicaDL's `_axis-<name>_` in tensor names)."""
        return SLICE_AXES[self.direction] if self.direction is not None else None

    @property
    def channels(self) -> int:
        """Input channels of a network on this mode's items: 3 for rgb slices, 1 otherwise."""
        return 3 if self.slice_mode == "rgb" else 1

    def __str__(self) -> str:
        if self.kind == "patch":
            return f"patch-s{self.size}-t{self.stride}"
        if self.kind == "roi":
            return "roi-" + "+".join(self.rois) + ("-uncropped" if self.uncropped_roi else "")
        if self.kind == "slice":
            return f"slice-{self.axis_name}-{self.slice_mode}"
        return "image"


ExtractionMode.IMAGE = ExtractionMode("image")

"""Which tensors a model reads from a CAPS: whole images, or patches of a size and stride.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ExtractionMode:
    kind: str  # "image" or "patch"
    size: int | None = None  # patch side, in voxels (patches only)
    stride: int | None = None  # step between patches, in voxels (patches only)

    IMAGE: ClassVar[ExtractionMode]

    @classmethod
    def patch(cls, size: int, stride: int) -> ExtractionMode:
        return cls("patch", int(size), int(stride))

    @classmethod
    def of(cls, mode: str, size: int | None, stride: int | None) -> ExtractionMode:
        """A model's mode ("image", "patch", or another ClinicaDL mode read as whole images) with its
        patch size and stride (the size when the stride is not given); whole images without a size.

        >>> str(ExtractionMode.of("patch", 32, None)), str(ExtractionMode.of("roi", 32, 8))
        ('patch-s32-t32', 'image')
        """
        if mode == "patch" and size:
            return cls.patch(size, stride or size)
        return cls.IMAGE

    @classmethod
    def parse(cls, text: str) -> ExtractionMode:
        """The value `str()` wrote: 'image' or 'patch-s<size>-t<stride>'; ValueError for anything else.

        >>> ExtractionMode.parse("patch-50-50")
        Traceback (most recent call last):
        ...
        ValueError: not an extraction mode: 'patch-50-50' (expected 'image' or 'patch-s<size>-t<stride>')
        """
        if text == "image":
            return cls.IMAGE
        kind, _, rest = text.partition("-s")
        size, _, stride = rest.partition("-t")
        if kind != "patch" or not size.isdigit() or not stride.isdigit():
            raise ValueError(
                f"not an extraction mode: {text!r} (expected 'image' or 'patch-s<size>-t<stride>')"
            )
        return cls.patch(int(size), int(stride))

    @property
    def is_patch(self) -> bool:
        return self.kind == "patch"

    def __str__(self) -> str:
        return f"patch-s{self.size}-t{self.stride}" if self.is_patch else "image"


ExtractionMode.IMAGE = ExtractionMode("image")

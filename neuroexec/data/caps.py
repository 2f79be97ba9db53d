"""Every path inside a CAPS folder is built here (ClinicaDL 1.x layout, FORMATS.md "CAPS").

>>> caps = CapsLayout(Path("caps"))
>>> caps.nifti_name("sub-01", "ses-M000")
'sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz'
>>> caps.extract_json("image")
PosixPath('caps/tensor_extraction/extract_image.json')
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from neuroexec.errors import InputError
from neuroexec.preprocessings import T1_LINEAR, Preprocessing

CROPPED_PATTERN = T1_LINEAR.pattern(uncropped=False)
UNCROPPED_PATTERN = T1_LINEAR.pattern(uncropped=True)
MODES = ("image", "patch", "slice", "roi")


def nifti_pattern(uncropped: bool = False, preprocessing: Preprocessing = T1_LINEAR) -> str:
    """The glob ClinicaDL uses to find the image of a session (ClinicaDL's file_type pattern)."""
    return preprocessing.pattern(uncropped)


def extract_json_name(mode: str) -> str:
    """ClinicaDL's name of the extraction record of a mode, `extract_<mode>.json` (see CapsLayout.extract_json)."""
    return f"extract_{mode}.json"


def preprocessing_record(
    mode: str,
    uncropped: bool,
    prepare_dl: bool,
    patch: tuple[int, int] | None = None,
    preprocessing: str | Preprocessing = "t1-linear",
    mode_settings: dict | None = None,
) -> dict:
    """ClinicaDL's record of how the tensors were made: the content of `tensor_extraction/
    extract_<mode>.json`, and the `preprocessing_dict` of maps.json of a model trained on them.
    `prepare_dl`: whether ClinicaDL reads each part from its own file; `patch`: (size, stride);
    `mode_settings`: the roi or slice keys, with ClinicaDL's names (`roi_list`, `slice_direction`, ...).

    >>> preprocessing_record("image", uncropped=True, prepare_dl=False)["file_type"]["pattern"]
    '*space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz'
    """
    pre = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(preprocessing)
    record: dict = {
        **pre.record(),  # preprocessing, and tracer + suvr_reference_region or custom_suffix
        "mode": mode,
        # ClinicaDL's compute_folder_and_file_type sets it to None for custom
        "use_uncropped_image": None if pre.name == "custom" else uncropped,
        "prepare_dl": prepare_dl,
        "extract_json": extract_json_name(mode),
        "file_type": pre.file_type(uncropped),
    }
    if patch is not None:
        record.update(patch_size=patch[0], stride_size=patch[1])
    record.update(mode_settings or {})
    return record


# ClinicaDL's template and mask-name pattern of the ROI masks of each preprocessing
# (prepare_data_utils.TEMPLATE_DICT, PATTERN_DICT); `custom` gives its own.
ROI_TEMPLATES = dict.fromkeys(("t1-linear", "pet-linear", "flair-linear"), "MNI152NLin2009cSym")
ROI_MASK_PATTERNS = dict.fromkeys(("t1-linear", "pet-linear", "flair-linear"), "res-1x1x1")


def roi_mask_glob(pattern: str, roi: str) -> str:
    """The glob ClinicaDL's find_mask_path looks for in `masks/tpl-<template>/`.

    >>> roi_mask_glob("res-1x1x1", "leftHippocampus")
    '*res-1x1x1*_roi-leftHippocampus_mask.nii*'
    """
    return f"*{pattern}*_roi-{roi}_mask.nii*"


def roi_output_pattern(mask_name: str, crop_output: bool) -> str:
    """ClinicaDL's compute_output_pattern: the region's part of a ROI tensor name, from its mask's name
    (`desc-Crop` of a cropped-image mask becomes `desc-CropRoi` when the region is cropped to its box,
    `desc-CropImage` when not; a mask without it gets `desc-CropRoi` when cropped).

    >>> roi_output_pattern("tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-left_mask.nii.gz", True)
    'space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-left'
    """
    parts = mask_name.split("_")
    template, roi = parts[0].split("-")[1], parts[-2].split("-")[1]
    descriptors = parts[1:-2]
    if "desc-Crop" in descriptors:
        descriptors = [d for d in descriptors if d != "desc-Crop"]
        descriptors = ["desc-CropRoi" if crop_output else "desc-CropImage", *descriptors]
    elif crop_output:
        descriptors = ["desc-CropRoi", *descriptors]
    middle = "_".join(descriptors)
    return f"space-{template}_{middle}_roi-{roi}" if middle else f"space-{template}_roi-{roi}"


def roi_tensor_name(image_name: str, mask_name: str, uncropped_roi: bool) -> str:
    """ClinicaDL's extract_roi_path: `<sub>_<ses>[_T1w]_<roi_output_pattern>_<suffix>.pt` from the
    image's file name (NIfTI or tensor) and the mask's."""
    words = image_name.split("_")
    prefix = "_".join(words[:3])
    if not prefix.endswith("_T1w"):
        prefix = "_".join(words[:2])
    suffix = words[-1].split(".")[0]
    return f"{prefix}_{roi_output_pattern(mask_name, not uncropped_roi)}_{suffix}.pt"


def _insert_before_last_t1w(stem: str, insert: str) -> str:
    # ClinicaDL names a patch or slice by putting its tag before the last "_" of the image's name
    # (extract_patch_path, extract_slice_path: `rfind("_")`), the final "_T1w" for t1-linear:
    #   sub-01_ses-M000_T1w_space-..._res-1x1x1_T1w  ->  ..._res-1x1x1<insert>_T1w
    #   sub-01_ses-M000_trc-18FFDG_..._suvr-pons_pet  ->  ..._suvr-pons<insert>_pet
    cut = stem.rfind("_")
    if cut < 0:
        return stem + insert
    return stem[:cut] + insert + stem[cut:]


def _strip_nii_gz(name: str) -> str:
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


@dataclass(frozen=True)
class CapsLayout:
    """Paths of one CAPS directory: NIfTI inputs, extracted tensors, extraction records."""

    root: Path
    preprocessing: Preprocessing = T1_LINEAR  # which images of the sessions, and their tensors' folder

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, root: Path, source: object) -> CapsLayout:
        """The layout of CAPS `root` for the preprocessing of `source` (a spec Dataset, a MapsInfo)."""
        return cls(root, Preprocessing.of(source))

    # --- top level -------------------------------------------------------------------------------
    @property
    def subjects_dir(self) -> Path:
        return self.root / "subjects"

    @property
    def participants_tsv(self) -> Path:
        """The participants TSV of a generated CAPS (ClinicaDL keeps TSVs outside the CAPS)."""
        return self.root / "participants.tsv"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    def mask(self, region: str) -> Path:
        """The atrophy-region mask of a generated CAPS, `masks/<region>.nii.gz`."""
        return self.masks_dir / f"{region}.nii.gz"

    def roi_masks_dir(self, template: str) -> Path:
        """Where ClinicaDL looks for the ROI masks of a template: `masks/tpl-<template>/`."""
        return self.masks_dir / f"tpl-{template}"

    def find_roi_mask(self, template: str, pattern: str, roi: str, cropped: bool | None) -> Path | None:
        """ClinicaDL's find_mask_path: the first (by name) file of `roi_masks_dir(template)` matching
        `roi_mask_glob`, with `_desc-Crop_` in its name for a cropped image, without for an uncropped
        one (`cropped` None: either); None when there is none."""
        folder = self.roi_masks_dir(template)
        found = sorted(folder.glob(roi_mask_glob(pattern, roi))) if folder.is_dir() else []
        if cropped is not None:
            found = [m for m in found if ("_desc-Crop_" in m.name) == cropped]
        return found[0] if found else None

    def roi_mask_name(self, template: str, pattern: str, roi: str, cropped: bool) -> str:
        """The name neuroexec's generator gives a ROI mask (one ClinicaDL finds):
        `tpl-<template>[_desc-Crop]_<pattern>_roi-<roi>_mask.nii.gz`."""
        crop = "_desc-Crop" if cropped else ""
        return f"tpl-{template}{crop}_{pattern}_roi-{roi}_mask.nii.gz"

    # --- NIfTI images ----------------------------------------------------------------------------
    def session_dir(self, participant: str, session: str) -> Path:
        return self.subjects_dir / participant / session

    def t1_linear_dir(self, participant: str, session: str) -> Path:
        """The session's t1_linear folder (where neuroexec's generator writes; see image_dir)."""
        return self.session_dir(participant, session) / "t1_linear"

    def image_dir(self, participant: str, session: str) -> Path:
        """The folder of the session holding the layout's preprocessed image: Clinica's pipeline folder
        (`t1_linear`, `t2_linear`, `flair_linear`, `pet_linear`), the session itself for custom."""
        folder = self.preprocessing.session_folder
        return (
            self.session_dir(participant, session) / folder
            if folder
            else self.session_dir(participant, session)
        )

    def nifti_name(self, participant: str, session: str, uncropped: bool = False) -> str:
        """The name Clinica gives the session's image of the layout's preprocessing (neuroexec's
        generator writes t1-linear ones under it)."""
        return self.preprocessing.nifti_name(participant, session, uncropped)

    def find_nifti(self, participant: str, session: str, uncropped: bool = False) -> list[Path]:
        """Every file of the image folder matching the preprocessing's glob, case-insensitively, as
        ClinicaDL's insensitive_glob; for custom every such file below the session (ClinicaDL's `**`)."""
        folder = self.image_dir(participant, session)
        if not folder.is_dir():
            return []
        pattern = self.preprocessing.glob(uncropped).lower()
        if self.preprocessing.session_folder is None:
            files = (Path(top) / name for top, _, names in os.walk(folder) for name in names)
        else:
            files = (p for p in folder.iterdir())
        return sorted(p for p in files if fnmatch.fnmatchcase(p.name.lower(), pattern))

    def t1_linear_nifti(self, participant: str, session: str, uncropped: bool = False) -> Path:
        """The one NIfTI of the layout's preprocessing (t1-linear by default) of a session; InputError
        naming the folder and the pattern looked for when there is none or several.

        >>> caps = CapsLayout(Path("caps"))
        >>> folder = Path("caps/subjects/sub-01/ses-M000/t1_linear")
        >>> folder.mkdir(parents=True)
        >>> (folder / caps.nifti_name("sub-01", "ses-M000")).touch()
        >>> caps.t1_linear_nifti("sub-01", "ses-M000")
        PosixPath('caps/subjects/sub-01/ses-M000/t1_linear/sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz')
        """
        found = self.find_nifti(participant, session, uncropped)
        folder = self.image_dir(participant, session)
        if len(found) == 1:
            return found[0]
        what = "no file" if not found else f"{len(found)} files ({', '.join(p.name for p in found)})"
        raise InputError(
            folder,
            f"{participant} {session}: expected exactly one {self.preprocessing} file matching "
            f"{self.preprocessing.glob(uncropped)}, found {what}",
        )

    def first_nifti(self, uncropped: bool = False) -> Path | None:
        """The image of the first session (by name) that has exactly one, None when none has."""
        if not self.subjects_dir.is_dir():
            return None
        for folder in sorted(self.subjects_dir.glob("sub-*/ses-*")):
            found = self.find_nifti(folder.parent.name, folder.name, uncropped)
            if len(found) == 1:
                return found[0]
        return None

    def image_stem(self, participant: str, session: str, uncropped: bool = False) -> str:
        """Stem of the tensors of a session: the actual NIfTI's name when there is exactly one, else
        the name neuroexec would write (so a CAPS holding only tensors is still addressable)."""
        found = self.find_nifti(participant, session, uncropped)
        name = found[0].name if len(found) == 1 else self.nifti_name(participant, session, uncropped)
        return _strip_nii_gz(name)

    # --- extracted tensors -----------------------------------------------------------------------
    def tensor_dir(self, participant: str, session: str, mode: str) -> Path:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return (
            self.session_dir(participant, session)
            / "deeplearning_prepare_data"
            / f"{mode}_based"
            / self.preprocessing.tensor_folder
        )

    def image_tensor(self, participant: str, session: str, uncropped: bool = False) -> Path:
        """`.../deeplearning_prepare_data/image_based/t1_linear/<stem>.pt`: a float32 [1, X, Y, Z]."""
        stem = self.image_stem(participant, session, uncropped)
        return self.tensor_dir(participant, session, "image") / f"{stem}.pt"

    def _tagged_tensor(self, participant: str, session: str, mode: str, tag: str, uncropped: bool) -> Path:
        """`<mode>_based/.../<stem with tag before its last _>.pt`: ClinicaDL's naming of parts' files."""
        stem = self.image_stem(participant, session, uncropped)
        return self.tensor_dir(participant, session, mode) / f"{_insert_before_last_t1w(stem, tag)}.pt"

    def patch_tensor(
        self, participant: str, session: str, size: int, stride: int, index: int, uncropped: bool = False
    ) -> Path:
        """ClinicaDL's one-file-per-patch name: `<stem minus _T1w>_patchsize-<s>_stride-<t>_patch-<k>_T1w.pt`."""
        tag = f"_patchsize-{size}_stride-{stride}_patch-{index}"
        return self._tagged_tensor(participant, session, "patch", tag, uncropped)

    def roi_tensor(
        self, participant: str, session: str, mask: Path, uncropped_roi: bool, uncropped: bool = False
    ) -> Path:
        """ClinicaDL's file of one region of a session, in `roi_based/t1_linear/` (roi_tensor_name)."""
        stem = self.image_stem(participant, session, uncropped)
        name = roi_tensor_name(f"{stem}.nii.gz", Path(mask).name, uncropped_roi)
        return self.tensor_dir(participant, session, "roi") / name

    @staticmethod
    def sibling_part(first: Path, index: int, kind: str = "patch") -> Path:
        """The file of patch (or slice) `index` beside ClinicaDL's file of part 0 (`..._patch-0_T1w.pt`,
        `..._slice-0_T1w.pt`), without looking for the session's NIfTI again."""
        head, tail = first.name.rsplit(f"_{kind}-0", 1)
        return first.with_name(f"{head}_{kind}-{index}{tail}")

    def patch_bundle(
        self, participant: str, session: str, size: int, stride: int, uncropped: bool = False
    ) -> Path:
        """neuroexec's one-file-per-image layout: all patches of the image in one contiguous tensor
        [n, 1, s, s, s], named `<stem minus _T1w>_patchsize-<s>_stride-<t>_patches_T1w.pt`."""
        tag = f"_patchsize-{size}_stride-{stride}_patches"
        return self._tagged_tensor(participant, session, "patch", tag, uncropped)

    def slice_tensor(
        self, participant: str, session: str, axis: str, channel: str, index: int, uncropped: bool = False
    ) -> Path:
        """ClinicaDL's one-file-per-slice name (extract_slice_path), in `slice_based/`:
        `<stem minus _T1w>_axis-<sag|cor|axi>_channel-<rgb|single>_slice-<index>_T1w.pt`."""
        tag = f"_axis-{axis}_channel-{channel}_slice-{index}"
        return self._tagged_tensor(participant, session, "slice", tag, uncropped)

    def slice_bundle(
        self, participant: str, session: str, axis: str, channel: str, uncropped: bool = False
    ) -> Path:
        """neuroexec's one file per image and axis: every slice of the axis in one contiguous tensor
        [n, C, H, W], named `<stem minus _T1w>_axis-<axis>_channel-<channel>_slices_T1w.pt`."""
        tag = f"_axis-{axis}_channel-{channel}_slices"
        return self._tagged_tensor(participant, session, "slice", tag, uncropped)

    # --- records of ClinicaDL's generate kinds (data/generate_kinds.py) -------------------------------
    @property
    def generate_data_tsv(self) -> Path:
        """ClinicaDL's table of a generated CAPS, `data.tsv` (its participants TSV)."""
        return self.root / "data.tsv"

    @property
    def missing_mods_dir(self) -> Path:
        return self.root / "missing_mods"

    def missing_mods_tsv(self, session: str) -> Path:
        """ClinicaDL's `missing_mods/missing_mods_<session>.tsv` of a generated CAPS."""
        return self.missing_mods_dir / f"missing_mods_{session}.tsv"

    @property
    def commandline_json(self) -> Path:
        """The settings ClinicaDL's generate writes into the CAPS, `commandline.json`."""
        return self.root / "commandline.json"

    def generated_folder(self, participant: str, session: str, folder: str) -> Path:
        """A session's folder named `folder` (ClinicaDL's generate writes its images in `t1-linear/`,
        `pet-linear/`, `shepplogan/`)."""
        return self.session_dir(participant, session) / folder

    # --- extraction records ----------------------------------------------------------------------
    @property
    def tensor_extraction_dir(self) -> Path:
        return self.root / "tensor_extraction"

    def extract_json(self, mode: str) -> Path:
        """ClinicaDL's record of the extraction parameters, `tensor_extraction/extract_<mode>.json`."""
        return self.tensor_extraction_dir / extract_json_name(mode)

    def named_extract_json(self, name: str) -> list[Path]:
        """Where a training's PREPROCESSING_JSON argument `name` may be: `tensor_extraction/<name>`, or
        the same with `.json` added."""
        return [self.tensor_extraction_dir / name, self.tensor_extraction_dir / f"{name}.json"]

    def manifest_json(self, mode: str) -> Path:
        """neuroexec's incremental-extraction record (source mtime/size per tensor); ClinicaDL ignores it."""
        return self.tensor_extraction_dir / f"neuroexec_manifest_{mode}.json"

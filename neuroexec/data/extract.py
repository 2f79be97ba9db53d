"""Tensor extraction ("prepare data"): t1-linear NIfTI -> float32 tensors in the CAPS, incrementally.

An image is (re-)extracted when one of its tensors is missing, when it was never recorded, or when its
NIfTI differs from the one recorded in `tensor_extraction/neuroexec_manifest_<mode>.json`: other size or
mtime, and other content (a CAPS copied elsewhere keeps its tensors; the content hash is read only then).
The manifest is rewritten (atomically) every few images and when an error stops the run, so what was
extracted before an interruption stays extracted and recorded; the tensors a run is about to write are
recorded as pending first, so a run killed between two saves owns them too. A tensor at one of the paths
extraction writes that the manifest does not know was not written by neuroexec (ClinicaDL's
`prepare-data`): `extract_manifest.unrecorded_tensors` lists it, for the plan to show its removal.

    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> data = generate_atrophy_dataset(Path("data"), subjects=4, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    ExtractionCounts(extracted=4, up_to_date=0)
    >>> run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    ExtractionCounts(extracted=0, up_to_date=4)
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neuroexec.atomic import save_torch, write_json
from neuroexec.context import Kernels
from neuroexec.data.caps import CapsLayout, preprocessing_record
from neuroexec.data.extract_manifest import (
    manifest_key,
    mark_pending,
    read_manifest,
    record_describes,
    save_manifest_entries,
)
from neuroexec.data.extraction_plan import ExtractionCounts, ExtractionItem, ExtractionPlan
from neuroexec.data.participants import as_caps_by_cohort, caps_layouts, cohort_of, list_lines
from neuroexec.data.patch_extract import LAYOUTS, PatchCut, extract_patches_to, patch_counts
from neuroexec.data.roi_extract import RoiExtraction, extract_rois_to
from neuroexec.data.slice_extract import SliceCut, extract_slices_to, slice_count, slice_outputs, slice_record
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.plan.fingerprint import content_hash
from neuroexec.preprocessings import T1_LINEAR, Preprocessing

_MANIFEST_EVERY_S = 2.0


def read_nifti(nifti: Path) -> np.ndarray:
    """float32 voxels of a 3D NIfTI (`get_fdata(dtype=float32)`, no reorientation); InputError naming
    the file when it is corrupt, truncated, not 3D or holds NaN/inf."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        data = nib.load(str(nifti)).get_fdata(dtype=np.float32)
    except FileNotFoundError:
        raise InputError(nifti, "NIfTI file not found") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ImageFileError, ValueError) as exc:
        raise InputError(nifti, f"cannot read the NIfTI (corrupt or truncated file?): {exc}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(nifti, f"expected a 3D image, got shape {data.shape}")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(nifti, f"{bad} voxel(s) are NaN or infinite")
    return data


def extract_image(
    nifti: Path, out: Path, normalize: bool, expected_shape: tuple[int, ...] | None = None
) -> tuple[int, int, int]:
    """NIfTI -> float32 tensor [1, X, Y, Z] saved atomically at `out`; min-max scaled to [0, 1] when
    `normalize` (ClinicaDL's MinMaxNormalization: idempotent, so ClinicaDL applying it again on
    load changes nothing). Returns the image shape.

    >>> import nibabel as nib
    >>> nib.save(nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4)), "t1.nii.gz")
    >>> extract_image(Path("t1.nii.gz"), Path("t1.pt"), normalize=True)
    (2, 3, 4)
    >>> torch.load("t1.pt").max()
    tensor(1.)
    """
    tensor = load_image_array(nifti, normalize, expected_shape)
    save_torch(out, tensor)
    return tuple(tensor.shape[1:])


def load_image_array(
    nifti: Path, normalize: bool, expected_shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """The tensor extract_image saves, without saving it."""
    data = read_nifti(nifti)
    if expected_shape is not None and tuple(data.shape) != tuple(expected_shape):
        raise InputError(
            nifti, f"image shape {data.shape} differs from the dataset's first image {tuple(expected_shape)}"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(data)).unsqueeze(0)
    if normalize:
        lo, hi = tensor.min(), tensor.max()
        if hi == lo:
            raise InputError(
                nifti, f"constant image (every voxel = {float(lo)}): cannot min-max normalise it"
            )
        tensor = (tensor - lo) / (hi - lo)
    return tensor.contiguous()


def _outputs(caps: CapsLayout, p: str, s: str, plan: ExtractionPlan, n: int | None) -> tuple[Path, ...]:
    """The tensors extraction writes for session `s` of participant `p` (`n` patches, when known)."""
    size, stride, uncropped = plan.size, plan.stride, plan.uncropped
    if plan.mode == "image":
        return (caps.image_tensor(p, s, uncropped),)
    if plan.mode == "roi":  # ClinicaDL's one file per region
        masks, uncropped_roi = plan.masks[cohort_of_caps(plan, caps)], plan.roi.mode.uncropped_roi
        return tuple(caps.roi_tensor(p, s, m, uncropped_roi, uncropped) for m in masks.paths)
    if plan.mode == "slice":  # bundles: the image tensor too, which ClinicaDL cuts slices from
        image = (caps.image_tensor(p, s, uncropped),) if plan.layout == "bundle" else ()
        return image + slice_outputs(caps, p, s, slice_cut(plan), n)
    if plan.layout == "bundle":  # the image tensor too: ClinicaDL (prepare_dl = false) cuts patches from it
        return (caps.image_tensor(p, s, uncropped), caps.patch_bundle(p, s, size, stride, uncropped))
    if n is None:  # unknown count (shape not recorded yet): patch 0 stands for the set
        return (caps.patch_tensor(p, s, size, stride, 0, uncropped),)
    return tuple(caps.patch_tensor(p, s, size, stride, k, uncropped) for k in range(n))


def slice_cut(plan: ExtractionPlan, normalize: bool = False) -> SliceCut:
    """How a slice extraction cuts and writes its slices (direction, rgb/single, layout)."""
    mode = plan.extraction
    return SliceCut(mode.direction, mode.slice_mode, plan.layout, plan.uncropped, normalize)


def patch_normalization(normalize: bool) -> str:
    """How extracted patches are normalised, as recorded (manifest, step config): one by one or not."""
    return "each patch" if normalize else "none"


def cohort_of_caps(plan: ExtractionPlan, caps: CapsLayout) -> str:
    """The cohort of the plan whose CAPS is `caps`."""
    return next(c for c, root in plan.caps.items() if Path(root) == caps.root)


def _params(plan: ExtractionPlan, normalize: bool | None, cohort: str | None = None) -> dict:
    """What an extracted file depends on; a None value is not compared (unknown yet, or not relevant).
    A region depends on its mask too (the content hashes of the cohort's masks)."""
    patches = None if plan.mode != "patch" or normalize is None else patch_normalization(normalize)
    return {
        "normalize": normalize,
        "uncropped": plan.uncropped,
        "size": plan.size,
        "stride": plan.stride,
        "patch_normalization": patches,  # bundles written before per-patch normalisation are stale
        "masks": list(plan.masks[cohort].hashes) if plan.mode == "roi" and cohort is not None else None,
    }


def plan_extraction(
    frame: pd.DataFrame,
    caps_by_cohort: Path | Mapping[str, Path | CapsLayout],
    mode: str | ExtractionMode,
    uncropped: bool = False,
    layout: str = "bundle",
    normalize: bool | None = None,
    roi: RoiExtraction | None = None,
) -> ExtractionPlan:
    """Decide, per (participant, session), whether its tensors must be (re-)extracted. `mode`: the
    ExtractionMode (patch size and stride, slice direction...), or "image" / "roi". `normalize` None
    ignores the recorded normalisation (a plan shown before the value is known). The images read are
    those of the preprocessing of `caps_by_cohort`'s CapsLayouts (t1-linear for a path). `roi`: the
    regions; each CAPS's masks are found and checked now (InputError).

    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> data = generate_atrophy_dataset(Path("data"), subjects=4, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> [item.reason for item in plan_extraction(frame, data.caps_dir, ExtractionMode.patch(10, 10)).items]
    ['missing', 'missing', 'missing', 'missing']
    """
    extraction = _extraction_mode(mode, roi)
    if layout not in LAYOUTS:
        raise InputError(None, f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}", "layout")
    preprocessing = _one_preprocessing(caps_by_cohort)
    caps_by_cohort = as_caps_by_cohort(caps_by_cohort)
    plan = ExtractionPlan(
        extraction.kind,
        uncropped,
        extraction.size,
        extraction.stride,
        layout,
        caps_by_cohort,
        extraction=extraction,
        roi=roi,
        preprocessing=preprocessing,
    )
    if roi is not None:
        plan.masks.update({c: roi.masks(Path(root)) for c, root in caps_by_cohort.items()})
    manifests = {c: read_manifest(CapsLayout(p).manifest_json(plan.mode)) for c, p in caps_by_cohort.items()}
    missing_images = []
    for row in frame.to_dict("records"):
        cohort = cohort_of(row, caps_by_cohort)
        caps = plan.caps_layout(cohort)
        p, s = row["participant_id"], row["session_id"]
        found = caps.find_nifti(p, s, uncropped)
        if len(found) != 1:
            missing_images.append((caps, p, s, len(found)))
            continue
        nifti = found[0]
        entries = manifests[cohort]["entries"]
        outputs = _outputs(caps, p, s, plan, _recorded_count(caps, p, s, plan, entries))
        plan.items.append(
            ExtractionItem(
                cohort, p, s, nifti, outputs, _reason(caps, nifti, outputs, entries, plan, normalize, cohort)
            )
        )
    if missing_images:
        raise _missing_images(missing_images, preprocessing, uncropped)
    return plan


def _extraction_mode(mode: str | ExtractionMode, roi: RoiExtraction | None) -> ExtractionMode:
    """The ExtractionMode `plan_extraction` was given, or the one its text and `roi` name."""
    if isinstance(mode, ExtractionMode):
        extraction = mode
    elif mode == "image":
        extraction = ExtractionMode.IMAGE
    elif mode == "roi" and roi is not None:
        extraction = roi.mode
    elif mode in ("patch", "slice"):
        raise InputError(
            None,
            f"{mode} extraction needs its ExtractionMode (patch size and stride, slice direction)",
            "mode",
        )
    else:
        raise InputError(
            None, f"extraction mode {mode!r} is not supported (image, patch, slice or roi)", "mode"
        )
    if extraction.is_roi and roi is None:
        raise InputError(None, "roi extraction needs its regions (roi.list)", "mode")
    return extraction


def _recorded_count(caps: CapsLayout, p: str, s: str, plan: ExtractionPlan, entries: dict) -> int | None:
    """How many files ClinicaDL's one-file-per-part layout writes for the session, as the manifest
    recorded it (None: not recorded yet, or one bundle)."""
    if plan.layout != "clinicadl":
        return None
    if plan.mode == "patch":
        first = caps.patch_tensor(p, s, plan.size, plan.stride, 0, plan.uncropped)
        return entries.get(manifest_key(caps, first), {}).get("n_patches")
    if plan.mode == "slice":
        first = slice_outputs(caps, p, s, slice_cut(plan), None)[0]
        return entries.get(manifest_key(caps, first), {}).get("n_slices")
    return None


def _missing_images(missing: list, preprocessing: Preprocessing, uncropped: bool) -> InputError:
    """One error listing the sessions without exactly one image, with the glob and folder looked in."""
    glob = preprocessing.glob(uncropped)
    lines = [
        f"{p} {s}: {'no' if k == 0 else k} file matching {glob} in {c.image_dir(p, s)}"
        for c, p, s, k in missing
    ]
    return InputError(None, f"{len(lines)} session(s) without a {preprocessing} image:\n{list_lines(lines)}")


def _one_preprocessing(caps: Path | Mapping[str, Path | CapsLayout]) -> Preprocessing:
    """The preprocessing of the layouts of an extraction (one for all its cohorts)."""
    found = {layout.preprocessing for layout in caps_layouts(caps).values()}
    if len(found) > 1:
        raise InputError(None, f"one extraction reads one preprocessing, got {', '.join(map(str, found))}")
    return found.pop() if found else T1_LINEAR


def _reason(caps, nifti: Path, outputs, entries: dict, plan: ExtractionPlan, normalize, cohort=None) -> str:
    if not all(o.exists() for o in outputs):
        return "missing"
    records = [entries.get(manifest_key(caps, o)) for o in outputs]
    if any(r is None for r in records):
        return "not recorded"
    st = nifti.stat()
    if any(r.get("mtime_ns") != st.st_mtime_ns or r.get("size") != st.st_size for r in records):
        # a copied or touched CAPS: the same bytes are not a change (records from before lack the hash)
        digest = content_hash(nifti) if all(r.get("sha256") for r in records) else None
        if digest is None or any(r["sha256"] != digest for r in records):
            return "changed"
    wanted = _params(plan, normalize, cohort)
    for r in records:
        if any(v is not None and r.get("params", {}).get(k) != v for k, v in wanted.items()):
            return "parameters changed"
    return "up to date"


def extract_json_content(plan: ExtractionPlan, root: Path | None = None) -> dict:
    """ClinicaDL's `extract_<mode>.json` for this extraction (into the CAPS `root`, the first one by
    default: a ROI record names its masks' folder)."""
    if plan.roi is not None:  # ClinicaDL reads each region from its own file
        root = Path(root or next(iter(plan.caps.values())))
        record = {**preprocessing_record("roi", plan.uncropped, True), **plan.roi.record(root)}
        return _with_preprocessing(record, plan)
    # ClinicaDL's prepare_dl: whether patches were saved one per file (else cut from the image tensor)
    if plan.mode == "slice":
        return _with_preprocessing(slice_record(slice_cut(plan)), plan)
    prepare_dl = plan.mode == "patch" and plan.layout == "clinicadl"
    patch = (plan.size, plan.stride) if plan.mode == "patch" else None
    return preprocessing_record(plan.mode, plan.uncropped, prepare_dl, patch, plan.preprocessing)


def _write_record(path: Path, record: dict) -> None:
    """Write `extract_<mode>.json`, unless it already describes these tensors (`record_describes`: a
    user's record under this name keeps its name, description and discarded_slices)."""
    if not record_describes(path, record):
        write_json(path, record)


def _with_preprocessing(record: dict, plan: ExtractionPlan) -> dict:
    """`record` with ClinicaDL's keys of the plan's preprocessing (preprocessing, tracer...,
    use_uncropped_image, file_type), as preprocessing_record writes them."""
    keys = (
        "preprocessing",
        "tracer",
        "suvr_reference_region",
        "custom_suffix",
        "use_uncropped_image",
        "file_type",
    )
    own = preprocessing_record(plan.mode, plan.uncropped, False, preprocessing=plan.preprocessing)
    return {**{k: v for k, v in record.items() if k not in keys}, **{k: own[k] for k in keys if k in own}}


def run_extraction(
    plan: ExtractionPlan,
    normalize: bool,
    reporter=None,
    kernels: Kernels = "auto",
    device: torch.device | None = None,
) -> ExtractionCounts:
    """Extract the images the plan marks, recording each in the manifest; write extract_<mode>.json.
    Images are read on the CPU and their patches cut there, by `ops.extract_patches` with `kernels`
    (the step's compute.kernels); with "triton" they are cut on `device` (the step's), the one choice
    that runs a kernel on images read into host memory.

    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> data = generate_atrophy_dataset(Path("data"), subjects=4, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    ExtractionCounts(extracted=4, up_to_date=0)
    """
    manifests = {c: read_manifest(CapsLayout(p).manifest_json(plan.mode)) for c, p in plan.caps.items()}
    todo, expected = _still_to_do(plan, manifests, normalize)
    _mark_pending(plan, todo)
    cut_on = device if kernels == "triton" and device is not None else torch.device("cpu")
    extractor = _Extractor(plan, normalize, kernels, cut_on, expected)
    dirty: dict[str, dict] = {}  # cohort -> the manifest entries written since the last save
    last_save = time.monotonic()
    items = (
        reporter.iterate(todo, total=len(todo), desc=f"extract {plan.mode}") if reporter is not None else todo
    )
    try:
        for item in items:
            caps = plan.caps_layout(item.cohort)
            outputs, record = extractor.extract(caps, item)
            for out in outputs:
                manifests[item.cohort]["entries"][manifest_key(caps, out)] = record
                dirty.setdefault(item.cohort, {})[manifest_key(caps, out)] = record
            if time.monotonic() - last_save > _MANIFEST_EVERY_S:
                _save_manifests(plan, manifests, dirty)
                last_save = time.monotonic()
    finally:
        _save_manifests(plan, manifests, dirty)
    for root in plan.caps.values():
        _write_record(CapsLayout(root).extract_json(plan.mode), extract_json_content(plan, root))
    return ExtractionCounts(extracted=len(todo), up_to_date=len(plan.items) - len(todo))


def _still_to_do(
    plan: ExtractionPlan, manifests: dict, normalize: bool
) -> tuple[list[ExtractionItem], tuple[int, ...] | None]:
    """The plan's items judged again with the actual normalisation (tensors made with the other setting
    are stale), and the image shape recorded by an item up to date (which new images must have)."""
    todo, expected = [], None
    for item in plan.items:
        caps = plan.caps_layout(item.cohort)
        entries = manifests[item.cohort]["entries"]
        if _reason(caps, item.nifti, item.outputs, entries, plan, normalize, item.cohort) == "up to date":
            expected = (
                expected or tuple(entries[manifest_key(caps, item.outputs[0])].get("shape") or ()) or None
            )
        else:
            todo.append(item)
    return todo, expected


@dataclass
class _Extractor:
    """Extracts one image after another: each checked against the first image's shape (`expected`),
    its patches cut into one buffer recycled from image to image (same shape over a dataset)."""

    plan: ExtractionPlan
    normalize: bool
    kernels: Kernels
    cut_on: torch.device
    expected: tuple[int, ...] | None
    patch_buffer: torch.Tensor | None = None

    def extract(self, caps: CapsLayout, item: ExtractionItem) -> tuple[list[Path], dict]:
        """Write the tensors of `item`; returns them and the manifest record they share."""
        plan = self.plan
        st = item.nifti.stat()
        # regions are cut from the image as it is (ClinicaDL's), then normalised one by one
        image = load_image_array(item.nifti, self.normalize and plan.mode != "roi", self.expected)
        self.expected = self.expected or tuple(image.shape[1:])
        outputs: list[Path] = []
        n = None
        if plan.mode == "roi":
            outputs += self._rois(caps, item, image)
        if plan.mode == "image" or (plan.layout == "bundle" and plan.mode != "roi"):  # regions: files only
            path = caps.image_tensor(item.participant, item.session, plan.uncropped)
            save_torch(path, image)
            outputs.append(path)
        if plan.mode == "patch":
            n = int(np.prod(patch_counts(image.shape, plan.size, plan.stride)))
            outputs += self._patches(caps, item, image, n)
        if plan.mode == "slice":
            n = slice_count(image.shape, plan.extraction.direction)
            cut = slice_cut(plan, self.normalize)
            outputs += extract_slices_to(image, caps, item.participant, item.session, cut)
        record = {
            "nifti": manifest_key(caps, item.nifti),
            "mtime_ns": st.st_mtime_ns,
            "size": st.st_size,
            "sha256": content_hash(item.nifti),
            "shape": list(image.shape[1:]),
            "n_patches": n if plan.mode == "patch" else None,
            "n_slices": n if plan.mode == "slice" else None,
            "params": _params(plan, self.normalize, item.cohort),
        }
        return outputs, record

    def _rois(self, caps: CapsLayout, item: ExtractionItem, image: torch.Tensor) -> list[Path]:
        masks, plan = self.plan.masks[item.cohort], self.plan
        masks.check_image_shape(tuple(image.shape), item.nifti)
        p, s = item.participant, item.session
        return extract_rois_to(image, caps, p, s, masks, plan.roi.mode, plan.uncropped, self.normalize)

    def _patches(self, caps: CapsLayout, item: ExtractionItem, image: torch.Tensor, n: int) -> list[Path]:
        plan = self.plan
        shape = (n, image.shape[0], plan.size, plan.size, plan.size)
        if self.patch_buffer is None or tuple(self.patch_buffer.shape) != shape:
            self.patch_buffer = torch.empty(shape, dtype=image.dtype, device=self.cut_on)
        cut = PatchCut(plan.size, plan.stride, plan.layout, plan.uncropped, self.normalize)
        return extract_patches_to(
            image.to(self.cut_on), caps, item.participant, item.session, cut, self.patch_buffer, self.kernels
        )


def _save_manifests(plan: ExtractionPlan, manifests: dict, dirty: dict[str, dict]) -> None:
    """Add the entries written since the last save to each manifest as it is on disk now: another
    extraction into the same CAPS (another dataset reading it) may have recorded its own meanwhile."""
    for cohort in sorted(dirty):
        path = CapsLayout(plan.caps[cohort]).manifest_json(plan.mode)
        manifests[cohort] = save_manifest_entries(path, dirty[cohort])
    dirty.clear()


def _mark_pending(plan: ExtractionPlan, todo: list[ExtractionItem]) -> None:
    """Record in each manifest the tensors the run is about to write, before it writes them."""
    keys: dict[str, list[str]] = {}
    for item in todo:
        caps = plan.caps_layout(item.cohort)
        keys.setdefault(item.cohort, []).extend(manifest_key(caps, o) for o in item.outputs)
    for cohort, cohort_keys in sorted(keys.items()):
        mark_pending(CapsLayout(plan.caps[cohort]).manifest_json(plan.mode), cohort_keys)

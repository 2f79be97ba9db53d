"""The embedded default dataset (ARCHITECTURE.md section 7): a CAPS of procedural brain-like phantoms
with a known answer. "AD" subjects lose intensity inside one region (the hippocampi by default: 30-40%
darker and 15-20% smaller, the lost tissue turned to CSF; or enlarged ventricles); all
other variation (deformation, intensity scaling, bias field, noise) is drawn from the same
distributions for AD and CN, so a model that beats chance must look at that region.

The phantom is analytic (nested soft ellipsoids in millimetres), so each image is computed directly on
its grid: no template, no download, no resampling, and the same anatomy at every resolution.

    >>> data = generate_atrophy_dataset(Path("demo"), subjects=4, resolution_mm=4.0)
    >>> data.shape
    (42, 52, 45)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroexec.atomic import atomic_open, write_tsv
from neuroexec.data.caps import CapsLayout
from neuroexec.data.generate_pool import each, writers_of
from neuroexec.data.generated_files import generated_contents as generated_contents  # read here by tests
from neuroexec.data.roi_masks import REGIONS, roi_mask_paths
from neuroexec.data.roi_masks import roi_names as roi_names  # where anatomy.py and the tests read it

# Field of view of ClinicaDL's cropped MNI152NLin2009cSym image: 169 x 208 x 179 voxels of 1 mm whose
# first voxel centre lies at world (-84, -119, -78) mm.
CROP_SHAPE = (169, 208, 179)
CROP_FIRST_VOXEL = (-84.0, -119.0, -78.0)
SCALE = 100.0  # white matter is ~85, like a (small) MRI intensity range rather than [0, 1]
_NOISE_SD = 0.03
_HEAD = ((0.0, 0.0, -4.0), (82.0, 102.0, 87.0))
# (value, radius on the head's ellipsoidal scale): scalp, skull, CSF, grey matter
_HEAD_LAYERS = ((0.30, 1.0), (0.05, 0.95), (0.15, 0.91), (0.55, 0.88))
_WHITE = (0.85, 0.72)  # white matter value, radius (modulated by a folding pattern)
_THALAMI = ((11.0, -8.0, 2.0), (9.0, 14.0, 9.0), 0.65)
_VENTRICLES = ((9.0, 0.0, 10.0), (5.0, 24.0, 9.0), 0.12)
_HIPPOCAMPI = ((27.0, -12.0, -20.0), (7.0, 19.0, 8.0), 0.58)
# The session folders ClinicaDL's generate kinds write their images in (data/generate_kinds.py)
_MASK_MARGIN_MM = 2.0  # the mask covers the region plus the typical displacement of the deformation


@dataclass(frozen=True)
class GeneratedDataset:
    """What generate_atrophy_dataset wrote: the CAPS, its participants TSV and the region mask."""

    root: Path
    caps_dir: Path
    participants_tsv: Path
    mask: Path
    region: str
    shape: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    affine: np.ndarray
    participants: pd.DataFrame


def grid_for(
    resolution_mm: float, shape: tuple[int, int, int] | None = None
) -> tuple[tuple[int, ...], np.ndarray]:
    """Grid shape and voxel sizes covering the MNI crop: 1 mm -> 169x208x179, 4 mm -> 42x52x45; an
    explicit `shape` keeps the field of view with anisotropic voxels."""
    if shape is None:
        if resolution_mm <= 0:
            raise ValueError(f"resolution_mm must be > 0, got {resolution_mm}")
        shape = tuple(max(4, round(n / resolution_mm)) for n in CROP_SHAPE)
    voxel = np.array([n / s for n, s in zip(CROP_SHAPE, shape)], dtype=np.float64)
    return tuple(int(s) for s in shape), voxel


def affine_for(voxel: np.ndarray) -> np.ndarray:
    """Voxel -> world (mm) for the MNI crop field of view sampled with `voxel`-sized voxels."""
    affine = np.diag([*voxel, 1.0])
    affine[:3, 3] = np.array(CROP_FIRST_VOXEL) - 0.5 + 0.5 * voxel  # same box edges as the 1 mm crop
    return affine


# The generated images' qform and sform code: 4, "mni" (NIfTI's NIFTI_XFORM_MNI_152), their world
# being the MNI152NLin2009cSym space of ClinicaDL's t1-linear crop; units mm.
XFORM_CODE = 4


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a generated image or mask as .nii.gz (float32), atomically: qform and sform both `affine`
    with XFORM_CODE (MNI152), xyzt units mm (and s). Same arguments -> same bytes. (atomic.save_nifti
    leaves the codes 0 and the units unknown; this one is looked up here, so tests can wrap it.)"""
    import gzip

    import nibabel as nib

    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine)
    img.set_qform(affine, code=XFORM_CODE)
    img.set_sform(affine, code=XFORM_CODE)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_open(path, "wb") as f:
        raw = img.to_bytes()
        f.write(gzip.compress(raw, compresslevel=1, mtime=0) if str(path).endswith(".gz") else raw)


def _centred_coords(shape: tuple[int, ...], voxel: np.ndarray) -> list[np.ndarray]:
    # Millimetres from the centre of the field of view, as broadcastable 1D axes (x, y, z).
    axes = []
    for d, (n, v) in enumerate(zip(shape, voxel)):
        a = ((np.arange(n) + 0.5) * v - n * v / 2).astype(np.float32)
        axes.append(a.reshape([-1 if i == d else 1 for i in range(3)]))
    return axes


def _radius(coords: list[np.ndarray], centre, semi_axes) -> np.ndarray:
    return np.sqrt(sum(((c - m) / a) ** 2 for c, m, a in zip(coords, centre, semi_axes)))


def _soft(r: np.ndarray, threshold, semi_axes, edge_mm: float) -> np.ndarray:
    # Partial-volume weight: ~ distance to the ellipsoid surface in voxels, clipped to [0, 1].
    return np.clip(0.5 + (threshold - r) * (min(semi_axes) / edge_mm), 0.0, 1.0)


def _paint(img: np.ndarray, weight: np.ndarray, value: float) -> np.ndarray:
    return img * (1.0 - weight) + np.float32(value) * weight


def _pair(coords, centre, semi, scale: float = 1.0):
    """Radius to the nearer of two mirror-image ellipsoids (x = +-centre[0])."""
    semi = tuple(a * scale for a in semi)
    left = _radius(coords, (-centre[0], centre[1], centre[2]), semi)
    right = _radius(coords, centre, semi)
    return np.minimum(left, right), semi


def _deformed_coords(rng: np.random.Generator, shape, voxel) -> list[np.ndarray]:
    """Centred coordinates after a small random affine and a low-frequency displacement field."""
    x, y, z = (np.broadcast_to(a, shape) for a in _centred_coords(shape, voxel))
    scale = 1.0 + rng.uniform(-0.03, 0.03, 3)
    shift = rng.normal(0.0, 1.5, 3)
    out = [c * np.float32(s) + np.float32(t) for c, s, t in zip((x, y, z), scale, shift)]
    for d in range(3):
        for _ in range(3):
            wavelength = rng.uniform(80.0, 160.0)
            direction = rng.normal(size=3)
            k = direction / np.linalg.norm(direction) * (2 * np.pi / wavelength)
            phase = rng.uniform(0, 2 * np.pi)
            amplitude = rng.normal(0.0, 1.0)
            out[d] = out[d] + np.float32(amplitude) * np.sin(
                np.float32(k[0]) * x + np.float32(k[1]) * y + np.float32(k[2]) * z + np.float32(phase)
            )
    return out


def _phantom(
    coords, edge_mm: float, hippo_value: float, hippo_scale: float, vent_scale: float, shrink: float = 0.0
) -> np.ndarray:
    """The phantom at `coords` (mm). `shrink` > 0 shrinks the hippocampi by that fraction, the tissue
    lost becoming CSF (an enlarged temporal horn, as in atrophy)."""
    centre, semi = _HEAD
    r = _radius(coords, centre, semi)
    img = np.zeros(r.shape, np.float32)
    for value, threshold in _HEAD_LAYERS:
        img = _paint(img, _soft(r, threshold, semi, edge_mm), value)
    x, y, z = coords
    folds = 0.05 * np.sin(x / 6.0) * np.sin(y / 7.0) * np.sin(z / 6.5)  # gyral-like GM/WM boundary
    img = _paint(img, _soft(r, _WHITE[1] + folds, semi, edge_mm), _WHITE[0])
    for (c, s, value), scale in ((_THALAMI, 1.0), (_VENTRICLES, vent_scale)):
        rr, ss = _pair(coords, c, s, scale)
        img = _paint(img, _soft(rr, 1.0, ss, edge_mm), value)
    if shrink > 0:
        rr, ss = _pair(coords, _HIPPOCAMPI[0], _HIPPOCAMPI[1], hippo_scale)
        img = _paint(img, _soft(rr, 1.0, ss, edge_mm), _VENTRICLES[2])
    rr, ss = _pair(coords, _HIPPOCAMPI[0], _HIPPOCAMPI[1], hippo_scale * (1.0 - shrink))
    return _paint(img, _soft(rr, 1.0, ss, edge_mm), hippo_value)


def region_mask(region: str, shape, voxel) -> np.ndarray:
    """Binary mask (template space, no deformation) of the region where AD atrophy is simulated."""
    coords = _centred_coords(shape, voxel)
    if region == "hippocampus":
        c, s, _ = _HIPPOCAMPI
        r, _ = _pair(coords, c, tuple(a + _MASK_MARGIN_MM for a in s))
    elif region == "ventricles":
        c, s, _ = _VENTRICLES
        r, _ = _pair(coords, c, tuple(a * 1.4 + _MASK_MARGIN_MM for a in s))  # room for the enlargement
    else:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    return (r <= 1.0).astype(np.uint8)


def roi_half_masks(region: str, shape, voxel) -> tuple[np.ndarray, np.ndarray]:
    """The region mask split at the mid-sagittal plane: (left, right) halves (RAS: left is low x)."""
    mask = region_mask(region, shape, voxel)
    x = _centred_coords(shape, voxel)[0]
    return (mask * (x < 0)).astype(np.uint8), (mask * (x > 0)).astype(np.uint8)


def _subject_image(
    anatomy: np.random.Generator,
    acquisition: np.random.Generator,
    shape,
    voxel,
    region: str,
    ad: bool,
    session: int,
) -> np.ndarray:
    """One image. `anatomy` (sizes, severity, deformation) is the subject's stream, shared by its
    sessions; `acquisition` (gain, bias, noise) is the session's. Every number is drawn for AD and CN
    alike, so the two groups differ only by `ad`."""
    hippo_scale = anatomy.uniform(0.92, 1.08)
    vent_scale = anatomy.uniform(0.9, 1.1)
    severity = anatomy.uniform(0.30, 0.40) * (1.0 + 0.15 * session)
    coords = _deformed_coords(anatomy, shape, voxel)
    gain = acquisition.uniform(0.9, 1.1)
    direction = acquisition.normal(size=3)
    direction /= np.linalg.norm(direction)
    hippo_value, shrink = _HIPPOCAMPI[2], 0.0
    if ad and region == "hippocampus":  # intensity loss and shrinkage, both growing with `severity`
        hippo_value *= 1.0 - min(severity, 0.6)
        shrink = min(severity, 0.6) / 2
    if ad and region == "ventricles":
        vent_scale *= 1.0 + min(severity, 0.6)
    img = _phantom(coords, float(np.mean(voxel)), hippo_value, hippo_scale, vent_scale, shrink)
    x, y, z = _centred_coords(shape, voxel)
    bias = 1.0 + 0.1 * (direction[0] * x + direction[1] * y + direction[2] * z) / 100.0
    noise = acquisition.normal(0.0, _NOISE_SD, shape).astype(np.float32)
    return (np.abs(img * np.float32(gain) * bias + noise) * SCALE).astype(np.float32)


def participants_table(subjects: int, sessions: int, seed: int, subject_offset: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, subject_offset, subjects, 1])
    diagnoses = np.array((["AD", "CN"] * (subjects // 2 + 1))[:subjects])[rng.permutation(subjects)]
    rows = []
    for i, dx in enumerate(diagnoses):
        age = float(np.clip(rng.normal(75.0, 7.0) if dx == "AD" else rng.normal(72.0, 6.0), 55.0, 95.0))
        sex = "F" if rng.random() < 0.5 else "M"
        for s in range(sessions):
            rows.append(
                {
                    "participant_id": f"sub-{subject_offset + i:04d}",
                    "session_id": f"ses-M{12 * s:03d}",
                    "diagnosis": str(dx),
                    "age": round(float(age) + s, 1),
                    "sex": sex,
                }
            )
    return pd.DataFrame(rows)


def planned_participants(generate) -> pd.DataFrame | None:
    """The participants table a spec dataset's `generate` settings write, without writing anything
    (what the plan checks a model's label against before the dataset exists). ClinicaDL's kinds: the
    columns and labels of their table (trivial, random, shepplogan: AD and CN); None for those that
    keep the source's participants (hypometabolic, artifacts), known once generated."""
    if generate.kind in ("atrophy", "anatomy"):
        return participants_table(
            generate.subjects, generate.sessions, generate.seed, generate.subject_offset
        )
    if generate.kind not in ("trivial", "random", "shepplogan"):
        return None
    frame = pd.DataFrame(
        {"participant_id": ["sub-0", "sub-1"], "session_id": "ses-M000", "diagnosis": ["AD", "CN"]}
    )
    if generate.kind == "shepplogan":
        return frame.assign(subtype=0)
    return frame.assign(age_bl=60, sex="F")


def generated_mask(dataset) -> Path | None:
    """The atrophy-region mask the `generate` of a spec Dataset writes; None for a dataset not generated
    or generated by one of ClinicaDL's kinds (they write no mask)."""
    if dataset.generate is None or dataset.generate.kind not in ("atrophy", "anatomy"):
        return None
    return CapsLayout(dataset.caps).mask(dataset.generate.region)


def write_subject_images(caps: CapsLayout, frame: pd.DataFrame, seed: int, affine: np.ndarray, draw,
                         reporter, desc: str) -> None:  # fmt: skip
    """Each row's t1-linear image, `draw(anatomy_rng, acquisition_rng, is_ad, session)`: one generator per
    subject and one per session, seeded from (seed, subject number[, session]) as every generated kind
    does, so a subject looks the same whatever the other subjects, and whatever the processes writing
    them (`reporter`: a progress reporter, or data/generate_pool.Writers with its `n_proc`)."""
    rows = list(frame.itertuples(index=False))

    def write(i: int) -> None:
        row = rows[i]
        index = int(row.participant_id[4:])
        session = int(row.session_id[5:]) // 12
        anatomy = np.random.default_rng([seed, index, 3])
        acquisition = np.random.default_rng([seed, index, session, 2])
        image = draw(anatomy, acquisition, row.diagnosis == "AD", session)
        folder = caps.t1_linear_dir(row.participant_id, row.session_id)
        save_nifti(folder / caps.nifti_name(row.participant_id, row.session_id), image, affine)

    each(writers_of(reporter), len(rows), write, desc)


def generate_atrophy_dataset(
    root: Path,
    subjects: int,
    resolution_mm: float,
    region: str = "hippocampus",
    seed: int = 0,
    sessions: int = 1,
    subject_offset: int = 0,
    reporter=None,
    shape: tuple[int, int, int] | None = None,
) -> GeneratedDataset:
    """Write a CAPS of `subjects` phantoms (half AD, half CN) under `root`, with `root/participants.tsv`
    and `root/masks/<region>.nii.gz`, and the region's left and right halves as ClinicaDL's ROI masks
    (`roi_mask_paths`: `roi.list = ["leftHippocampus", "rightHippocampus"]`). Same arguments -> same bytes. `shape` overrides the grid
    derived from `resolution_mm` (the field of view stays the MNI crop).

    >>> data = generate_atrophy_dataset(Path("tiny"), subjects=8, resolution_mm=8.0, seed=1)
    >>> data.participants.diagnosis.value_counts().to_dict()
    {'AD': 4, 'CN': 4}
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    if subjects < 1 or sessions < 1:
        raise ValueError(f"subjects and sessions must be >= 1, got {subjects} and {sessions}")
    root = Path(root)
    grid, voxel = grid_for(resolution_mm, shape)
    affine = affine_for(voxel)
    caps = CapsLayout(root)
    frame = participants_table(subjects, sessions, seed, subject_offset)

    def draw(anatomy, acquisition, ad: bool, session: int) -> np.ndarray:
        return _subject_image(anatomy, acquisition, grid, voxel, region, ad, session)

    write_subject_images(caps, frame, seed, affine, draw, reporter, "synthetic images")
    mask_path = caps.mask(region)
    save_nifti(mask_path, region_mask(region, grid, voxel), affine)
    for path, half in zip(roi_mask_paths(root, region), roi_half_masks(region, grid, voxel)):
        save_nifti(path, half, affine)
    tsv = caps.participants_tsv
    write_tsv(tsv, frame)
    return GeneratedDataset(root, root, tsv, mask_path, region, grid, tuple(map(float, voxel)), affine, frame)

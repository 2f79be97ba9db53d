"""Synthetic subjects on real anatomy (`generate.kind = "anatomy"`): each image is the MNI152 2009
template that nilearn's wheel ships (T1 and grey-matter probability, 1 mm; nothing is downloaded),
deformed, re-scaled and noised per subject, on ClinicaDL's t1-linear grid (169x208x179 voxels of 1 mm,
data/synthetic.py's CROP_FIRST_VOXEL) or a coarser one covering the same field of view.

AD subjects lose grey matter inside the hippocampi (`HIPPOCAMPUS_AXIS_MM`, intersected with the grey
matter probability: `hippocampus_mask`), the tissue lost turning to CSF, and their lateral ventricles are
enlarged; every other number (deformation, gain, bias field, noise) is drawn for AD and CN alike, so a
model that beats chance must look there. The region's mask is written as data/synthetic.py writes it:
`masks/hippocampus.nii.gz`, and its left and right halves as ClinicaDL's ROI masks
(`roi.list = ["leftHippocampus", "rightHippocampus"]`).

    >>> data = generate_anatomy_dataset(tmp_path / "demo", subjects=2, resolution_mm=8.0)
    >>> data.shape
    (21, 26, 22)
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from neuroexec.atomic import write_tsv
from neuroexec.data.caps import CapsLayout
from neuroexec.data.synthetic import (
    SCALE,
    GeneratedDataset,
    affine_for,
    grid_for,
    participants_table,
    roi_mask_paths,
    save_nifti,
    write_subject_images,
)
from neuroexec.errors import InputError

REGION = "hippocampus"
# Centre line of the right hippocampus in MNI152 space (mm), head -> body -> tail, after the
# Harvard-Oxford and AAL atlases' hippocampi (centres of mass about (+-27, -21, -13)); the left one is its
# mirror image (x -> -x). The region is the tube of HIPPOCAMPUS_RADIUS_MM around it where the template's
# grey matter probability is at least GM_THRESHOLD.
HIPPOCAMPUS_AXIS_MM = ((26.0, -10.0, -19.0), (28.0, -22.0, -13.0), (25.0, -36.0, -4.0))
HIPPOCAMPUS_RADIUS_MM = 5.5
GM_THRESHOLD = 0.3
# Where the lateral ventricles are magnified (mm): the densest CSF-dark part of the template's ventricles
# (the frontal horns and bodies beside the septum; their dark voxels smoothed 3 mm peak at (+-5, 4, 16)),
# in a Gaussian window of _VENTRICLE_SIGMA_MM that covers the bodies. (A centre in tissue, as the mean
# position of the C-shaped ventricles is, pushes the CSF outwards without enlarging it.)
VENTRICLES_MM = ((-5.0, 4.0, 16.0), (5.0, 4.0, 16.0))
_VENTRICLE_SIGMA_MM = 15.0
# Mean T1 of the template (0-1) in grey matter and in CSF: what a voxel's lost grey matter becomes.
_T1_GM, _T1_CSF = 0.655, 0.28
_NOISE_SD = 0.02


def template_file(kind: str) -> Path:
    """The file of nilearn's MNI152 2009 template (`kind` "t1" or "gm") that its
    `datasets.load_mni152_template` / `load_mni152_gm_template` read (nilearn's wheel ships them)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise InputError(None, "the anatomy generator needs nilearn: pip install nilearn")
    return (
        Path(spec.origin).parent
        / "datasets"
        / "data"
        / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    )


@lru_cache(maxsize=1)
def _template_files() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T1 and grey matter re-scaled to [0, 1] as nilearn's loaders do, read with nibabel: importing
    nilearn.datasets imports scikit-learn (seconds)."""
    t1_img = nib.load(template_file("t1"))
    t1 = np.asarray(t1_img.get_fdata(dtype=np.float32))
    gm = np.asarray(nib.load(template_file("gm")).get_fdata(dtype=np.float32))
    return t1 / t1.max(), gm / gm.max(), np.asarray(t1_img.affine, dtype=np.float64)


@lru_cache(maxsize=2)
def templates(resolution_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1, grey matter probability, template affine) of nilearn's MNI152 2009 template at 1 mm, both
    smoothed to about `resolution_mm` (so a coarse grid samples them without aliasing)."""
    t1, gm, affine = _template_files()
    sigma = 0.42 * max(resolution_mm - 1.0, 0.0)  # a Gaussian of FWHM ~ the voxel size
    if sigma == 0:
        return t1, gm, affine
    return ndimage.gaussian_filter(t1, sigma), ndimage.gaussian_filter(gm, sigma), affine


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def _tube_distance(points: np.ndarray) -> np.ndarray:
    """Distance (mm) of each world point (n, 3) to the nearer hippocampal centre line."""
    best = np.full(len(points), np.inf, dtype=np.float64)
    for side in (1.0, -1.0):
        axis = np.array(HIPPOCAMPUS_AXIS_MM) * np.array([side, 1.0, 1.0])
        for a, b in zip(axis[:-1], axis[1:]):
            best = np.minimum(best, _segment_distance(points, a, b))
    return best


def _world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).T


def hippocampus_mask(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """The hippocampi on a grid (uint8): the voxels within HIPPOCAMPUS_RADIUS_MM of the centre lines
    whose template grey matter probability (at 1 mm, sampled at the voxel centre) is >= GM_THRESHOLD.
    Only the voxels of the lines' bounding box are looked at."""
    _, gm, template_affine = templates(1.0)
    axis = np.array(HIPPOCAMPUS_AXIS_MM)
    high = axis.max(axis=0) + HIPPOCAMPUS_RADIUS_MM
    low = np.array([-high[0], *(axis.min(axis=0)[1:] - HIPPOCAMPUS_RADIUS_MM)])
    corners = np.array(np.meshgrid(*zip(low, high), indexing="ij")).reshape(3, -1)
    inverse = np.linalg.inv(affine)
    ijk = inverse[:3, :3] @ corners + inverse[:3, 3:]
    start = np.clip(np.floor(ijk.min(axis=1)).astype(int), 0, shape)
    stop = np.clip(np.ceil(ijk.max(axis=1)).astype(int) + 1, 0, shape)
    out = np.zeros(shape, np.uint8)
    if np.any(stop <= start):
        return out
    box = tuple(int(n) for n in stop - start)
    world = _world(box, affine @ _translation(start))
    near = _tube_distance(world) <= HIPPOCAMPUS_RADIUS_MM
    values = np.zeros(len(world), np.float32)
    values[near] = _sample(gm, template_affine, world[near], order=1)
    out[tuple(slice(a, b) for a, b in zip(start, stop))] = (values >= GM_THRESHOLD).reshape(box)
    return out


def _translation(ijk: np.ndarray) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = ijk
    return shift


def _sample(volume: np.ndarray, affine: np.ndarray, world: np.ndarray, order: int = 1) -> np.ndarray:
    """`volume` (on `affine`'s grid) at world points (n, 3), 0 outside."""
    inverse = np.linalg.inv(affine)
    ijk = inverse[:3, :3] @ world.T + inverse[:3, 3:]
    return ndimage.map_coordinates(volume, ijk, order=order, mode="constant", cval=0.0).astype(np.float32)


def sample_template(kind: str, shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the 1 mm template's `kind` ("t1" or "gm") at the voxel centres of a grid, their world x in mm)."""
    t1, gm, template_affine = templates(1.0)
    world = _world(shape, affine)
    values = _sample({"t1": t1, "gm": gm}[kind], template_affine, world)
    return values.reshape(shape), world[:, 0].reshape(shape)


def _displacement(rng: np.random.Generator, world: np.ndarray) -> np.ndarray:
    """Where each output point reads the template: a small random affine (scale +-3%, rotation +-3
    degrees, shift ~1.5 mm) and a smooth displacement field (sines of 70-150 mm, ~1.5 mm)."""
    angles = np.radians(rng.uniform(-3.0, 3.0, 3))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        turn = np.eye(3)
        turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
        rotation = rotation @ turn
    matrix = rotation * (1.0 + rng.uniform(-0.03, 0.03, 3))
    source = world @ matrix.T.astype(np.float32) + rng.normal(0.0, 1.5, 3).astype(np.float32)
    for d in range(3):
        for _ in range(3):
            direction = rng.normal(size=3)
            k = direction / np.linalg.norm(direction) * (2 * np.pi / rng.uniform(70.0, 150.0))
            phase, amplitude = rng.uniform(0, 2 * np.pi), rng.normal(0.0, 1.0)
            source[:, d] += np.float32(amplitude) * np.sin(world @ k.astype(np.float32) + np.float32(phase))
    return source


def _enlarge_ventricles(source: np.ndarray, factor: float) -> np.ndarray:
    """Read closer to each ventricle's centre (a Gaussian window of _VENTRICLE_SIGMA_MM): the
    ventricles appear `factor` times larger there, the tissue around them pushed outwards."""
    out = source.copy()
    for centre in np.array(VENTRICLES_MM, dtype=np.float32):
        offset = source - centre
        window = np.exp(-np.sum(offset**2, axis=1) / (2 * _VENTRICLE_SIGMA_MM**2))
        out -= offset * ((1.0 - 1.0 / factor) * window)[:, None].astype(np.float32)
    return out


@lru_cache(maxsize=2)
def _region_weight(resolution_mm: float) -> np.ndarray:
    """The hippocampus mask on the template's grid, softened (Gaussian of 2 mm, x 1.5, at most 1): how much of a voxel's
    grey matter the atrophy takes."""
    t1, _, affine = templates(resolution_mm)
    mask = hippocampus_mask(t1.shape, affine).astype(np.float32)
    return np.minimum(ndimage.gaussian_filter(mask, 2.0) * 1.5, 1.0)


def subject_image(
    anatomy: np.random.Generator,
    acquisition: np.random.Generator,
    shape: tuple[int, ...],
    affine: np.ndarray,
    resolution_mm: float,
    ad: bool,
    session: int = 0,
) -> np.ndarray:
    """One image. `anatomy` (deformation, severity) is the subject's stream, shared by its sessions;
    `acquisition` (gain, bias, noise) the session's. Every number is drawn for AD and CN alike."""
    t1, gm, template_affine = templates(resolution_mm)
    world = _world(shape, affine)
    severity = anatomy.uniform(0.85, 1.0) * (1.0 + 0.15 * session)
    enlargement = 1.0 + anatomy.uniform(0.25, 0.45) * (1.0 + 0.15 * session)
    source = _displacement(anatomy, world)
    if ad:
        source = _enlarge_ventricles(source, enlargement)
    image = _sample(t1, template_affine, source)
    if ad:
        lost = min(severity, 1.0) * _sample(_region_weight(resolution_mm), template_affine, source)
        image -= lost * _sample(gm, template_affine, source) * np.float32(_T1_GM - _T1_CSF)
    gain = acquisition.uniform(0.9, 1.1)
    direction = acquisition.normal(size=3)
    bias = 1.0 + 0.1 * (world @ (direction / np.linalg.norm(direction)).astype(np.float32)) / 100.0
    noise = acquisition.normal(0.0, _NOISE_SD, len(world)).astype(np.float32)
    return (np.abs(image * np.float32(gain) * bias + noise) * SCALE).astype(np.float32).reshape(shape)


def region_masks(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whole, left, right) hippocampus masks on the output grid (RAS: left is x < 0)."""
    mask = hippocampus_mask(shape, affine)
    x = _world(shape, affine)[:, 0].reshape(shape)
    return mask, (mask * (x < 0)).astype(np.uint8), (mask * (x > 0)).astype(np.uint8)


def generate_anatomy_dataset(
    root: Path,
    subjects: int,
    resolution_mm: float,
    seed: int = 0,
    sessions: int = 1,
    subject_offset: int = 0,
    reporter=None,
    shape: tuple[int, int, int] | None = None,
) -> GeneratedDataset:
    """Write a CAPS of `subjects` anatomical subjects (half AD, half CN) under `root`, with
    `root/participants.tsv`, `masks/hippocampus.nii.gz` and the two ROI masks. Same arguments -> same
    bytes. `shape` overrides the grid derived from `resolution_mm` (the field of view stays the crop)."""
    if subjects < 1 or sessions < 1:
        raise ValueError(f"subjects and sessions must be >= 1, got {subjects} and {sessions}")
    root = Path(root)
    grid, voxel = grid_for(resolution_mm, shape)
    affine = affine_for(voxel)
    smoothing = float(np.max(voxel))
    caps = CapsLayout(root)
    frame = participants_table(subjects, sessions, seed, subject_offset)

    def draw(anatomy, acquisition, ad: bool, session: int) -> np.ndarray:
        return subject_image(anatomy, acquisition, grid, affine, smoothing, ad, session)

    write_subject_images(caps, frame, seed, affine, draw, reporter, "anatomical images")
    whole, left, right = region_masks(grid, affine)
    save_nifti(caps.mask(REGION), whole, affine)
    for path, half in zip(roi_mask_paths(root, REGION), (left, right)):
        save_nifti(path, half, affine)
    write_tsv(caps.participants_tsv, frame)
    return GeneratedDataset(
        root,
        root,
        caps.participants_tsv,
        caps.mask(REGION),
        REGION,
        grid,
        tuple(map(float, voxel)),
        affine,
        frame,
    )

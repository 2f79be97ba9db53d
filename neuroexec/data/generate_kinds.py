"""Write the CAPS of a dataset's `generate` table, whatever its kind: neuroexec's atrophy phantoms
(data/synthetic.py) and anatomy (data/anatomy.py), and ClinicaDL 1.6.1's generate kinds: `trivial`,
`random` and `hypometabolic` here, `shepplogan` (data/generate_shepplogan.py), `artifacts`
(data/generate_artifacts.py). Which keys each reads: spec/generate_kinds.py.

ClinicaDL's kinds write what ClinicaDL writes (the images under ClinicaDL's names, `data.tsv`,
`missing_mods/`, `commandline.json`) and neuroexec's `participants.tsv`, with these differences: every
random draw comes from `seed` (same settings, same bytes); trivial's images go to the folder their
preprocessing reads (`t1_linear/`, where ClinicaDL 1.6.1 writes `t1-linear/`); without `mask_path`,
trivial's two masks are made from the MNI152 template (`hemisphere_masks`) instead of downloaded.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from neuroexec.data.caps import CapsLayout
from neuroexec.data.generate_pool import Writers, each, writers_of
from neuroexec.data.generate_source import (
    baseline,
    name_pattern,
    rng_for,
    save_like,
    sessions_of,
    source_image,
    source_preprocessing,
    with_source_columns,
    write_records,
)
from neuroexec.data.roi_masks import dataset_roi_masks
from neuroexec.errors import InputError
from neuroexec.spec.generate_kinds import FROM_CAPS, hypometabolic_mask, sigma, subjects
from neuroexec.spec.model import Dataset, Generate

SESSION = "ses-M000"  # the session of random's images
AGE, SEX = 60, "F"  # what ClinicaDL writes for every synthetic subject


def write_generated(ds: Dataset, reporter=None) -> None:
    """Generate the CAPS of `ds` (its `generate` table) into `ds.caps`."""
    g = ds.generate
    reporter = Writers(reporter, g.n_proc)  # the processes writing the images (generate_pool.py)
    if g.kind in ("atrophy", "anatomy"):
        from neuroexec.data.anatomy import generate_anatomy_dataset
        from neuroexec.data.synthetic import generate_atrophy_dataset

        common = dict(subjects=g.subjects, resolution_mm=g.resolution_mm, seed=g.seed, sessions=g.sessions,
                      subject_offset=g.subject_offset, reporter=reporter)  # fmt: skip
        if g.kind == "anatomy":
            generate_anatomy_dataset(ds.caps, **common)
        else:
            generate_atrophy_dataset(ds.caps, region=g.region, **common)
        return
    if g.kind == "shepplogan":
        from neuroexec.data.generate_shepplogan import generate_shepplogan

        generate_shepplogan(g, ds.caps, reporter)
    elif g.kind == "artifacts":
        from neuroexec.data.generate_artifacts import generate_artifacts

        generate_artifacts(g, ds.caps, reporter)
    else:
        {"trivial": generate_trivial, "random": generate_random, "hypometabolic": generate_hypometabolic}[
            g.kind
        ](g, ds.caps, reporter)
    if g.kind in FROM_CAPS:  # the masks on the grid of the images written (the source's: not read again)
        write_roi_masks(ds, min(CapsLayout(ds.caps).subjects_dir.rglob("*.nii.gz")))


def _enough(g: Generate, frame: pd.DataFrame, tsv: Path | None) -> None:
    if subjects(g) > len(frame):
        raise InputError(
            tsv or g.caps_directory,
            f"{g.kind} needs {subjects(g)} baseline sessions, this CAPS has {len(frame)}: lower subjects "
            "(ClinicaDL's --n_subjects)",
            "subjects",
        )


def _output_layout(caps: Path, g: Generate) -> CapsLayout:
    return CapsLayout(caps, source_preprocessing(g))


def generate_random(g: Generate, caps: Path, reporter=None) -> None:
    """ClinicaDL's random: 2 x subjects copies of the first session's image with Gaussian noise
    (mean, sigma) added, half labelled AD and half CN: a task no model can learn."""
    frame = sessions_of(g.caps_directory, g.participants_tsv)
    first = source_image(g, frame.participant_id[0], frame.session_id[0])
    source = nib.load(first)
    image = np.asarray(source.get_fdata())
    n = subjects(g)
    table = pd.DataFrame({"participant_id": [f"sub-RAND{i}" for i in range(2 * n)], "session_id": SESSION,
                          "diagnosis": ["AD"] * n + ["CN"] * n, "age_bl": AGE, "sex": SEX})  # fmt: skip
    out = _output_layout(caps, g)

    def write(i: int) -> None:
        noisy = image + rng_for(g, i).normal(g.mean, sigma(g), image.shape)
        name = f"sub-RAND{i}_{SESSION}_{name_pattern(first)}"
        save_like(out.image_dir(f"sub-RAND{i}", SESSION) / name, noisy, source, source.affine)

    each(writers_of(reporter), 2 * n, write, "random images")
    settings = {"caps_dir": g.caps_directory, "preprocessing": g.preprocessing, "n_subjects": n,
                "mean": g.mean, "sigma": sigma(g)}  # fmt: skip
    write_records(caps, table, settings, table)


def hemisphere_masks(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trivial's two masks when mask_path is not given: the grey matter (template probability >= 0.5)
    of the left (mask-1) and the right (mask-2) hemisphere of the MNI152 template, on the image's grid.
    (ClinicaDL 1.6.1 downloads its own pair of masks; neuroexec makes these offline.)"""
    from neuroexec.data.anatomy import sample_template

    gm, x = sample_template("gm", shape, affine)
    grey = gm >= 0.5
    return (grey & (x < 0)).astype(np.uint8), (grey & (x > 0)).astype(np.uint8)


def _trivial_masks(g: Generate, image: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    if g.mask_path is None:
        return hemisphere_masks(image.shape[:3], image.affine)
    masks = []
    for name in ("mask-1.nii", "mask-2.nii"):
        data = np.asarray(nib.load(g.mask_path / name).get_fdata())
        if data.shape[:3] != image.shape[:3]:
            raise InputError(
                g.mask_path / name, f"mask of shape {data.shape}, the images are {image.shape}", "mask_path"
            )
        masks.append(data)
    return masks[0], masks[1]


def atrophy_in(image: np.ndarray, mask: np.ndarray, percent: float, rng: np.random.Generator) -> np.ndarray:
    """ClinicaDL's im_loss_roi_gaussian_distribution: inside the mask (where the image is not 0) each
    voxel loses percent% of its value plus 10 x a shifted N(0, 0.1) draw (so at least percent%)."""
    out = np.array(image, dtype=np.float64, copy=True)
    inside = (mask != 0) & (out != 0)
    draws = rng.normal(0.0, 0.1, int(inside.sum()))
    loss = (draws + abs(draws.min() if draws.size else 0.0)) * 10 + percent
    out[inside] -= loss * out[inside] / 100
    return out


def generate_trivial(g: Generate, caps: Path, reporter=None) -> None:
    """ClinicaDL's trivial: from each of `subjects` baseline sessions, two images, sub-TRIV<2k> with
    mask-1's region atrophied (AD) and sub-TRIV<2k+1> with mask-2's (CN)."""
    frame = baseline(sessions_of(g.caps_directory, g.participants_tsv))
    _enough(g, frame, g.participants_tsv)
    out = _output_layout(caps, g)
    count = 2 * subjects(g)
    paths = [source_image(g, frame.participant_id[i // 2], frame.session_id[i // 2]) for i in range(count)]
    masks = _trivial_masks(g, nib.load(paths[0]))

    def write(i: int) -> None:
        source = nib.load(paths[i])
        image = atrophy_in(source.get_fdata(), masks[i % 2], g.atrophy_percent, rng_for(g, i))
        name = f"sub-TRIV{i}_{frame.session_id[i // 2]}_{name_pattern(paths[i])}"
        save_like(out.image_dir(f"sub-TRIV{i}", frame.session_id[i // 2]) / name, image, None, source.affine)

    each(writers_of(reporter), count, write, "trivial images")
    rows = [[f"sub-TRIV{i}", frame.session_id[i // 2], ("AD", "CN")[i % 2], AGE, SEX] for i in range(count)]
    table = pd.DataFrame(rows, columns=["participant_id", "session_id", "diagnosis", "age_bl", "sex"])
    settings = {"caps_dir": g.caps_directory, "preprocessing": g.preprocessing, "n_subjects": subjects(g),
                "atrophy_percent": g.atrophy_percent}  # fmt: skip
    write_records(caps, table, settings, table)


def hypometabolic_weight(mask: np.ndarray, degree: float, smoothing: float) -> np.ndarray:
    """ClinicaDL's mask_processing: 1 outside the region, 1 - degree% inside, Gaussian-smoothed."""
    weight = 1.0 - np.asarray(mask, dtype=np.float64)
    weight[weight == 0] = 1 - degree / 100
    return ndimage.gaussian_filter(weight, sigma=smoothing)


def _resampled_mask(path: Path, image: nib.Nifti1Image) -> np.ndarray:
    """The pathology mask on the image's grid (nearest neighbour)."""
    mask = nib.load(path)
    ijk = np.indices(image.shape[:3]).reshape(3, -1)
    to_mask = np.linalg.inv(mask.affine) @ image.affine
    where = to_mask[:3, :3] @ ijk + to_mask[:3, 3:]
    data = np.asarray(mask.get_fdata()).reshape(mask.shape[:3])
    return ndimage.map_coordinates(data, where, order=0, mode="constant").reshape(image.shape[:3])


def generate_hypometabolic(g: Generate, caps: Path, reporter=None) -> None:
    """ClinicaDL's hypometabolic: the first `subjects` baseline pet-linear images (18FFDG,
    cerebellumPons2) multiplied by the smoothed pathology mask, under their own participants."""
    frame = baseline(sessions_of(g.caps_directory, g.participants_tsv))
    _enough(g, frame, g.participants_tsv)
    mask_file = hypometabolic_mask(g)
    if not mask_file.is_file():
        raise InputError(mask_file, f"the {g.pathology} hypometabolism mask is not there", "mask_path")
    folder = source_preprocessing(g).name  # ClinicaDL's `pet-linear/`
    out, count = CapsLayout(caps), subjects(g)
    paths = [source_image(g, frame.participant_id[i], frame.session_id[i]) for i in range(count)]
    weight = hypometabolic_weight(_resampled_mask(mask_file, nib.load(paths[0])), g.anomaly_degree, sigma(g))

    def write(i: int) -> None:
        source = nib.load(paths[i])
        stem = paths[i].name.removesuffix(".gz").removesuffix(".nii").strip("pet")  # ClinicaDL's own strip
        name = f"{stem}pat-{g.pathology}_deg-{int(g.anomaly_degree)}_pet.nii.gz"
        image = np.asarray(source.get_fdata()) * weight
        where = out.generated_folder(frame.participant_id[i], frame.session_id[i], folder)
        save_like(where / name, image, None, source.affine)

    each(writers_of(reporter), count, write, "hypometabolic images")
    rows = [
        [frame.participant_id[i], frame.session_id[i], g.pathology, g.anomaly_degree] for i in range(count)
    ]
    table = pd.DataFrame(rows, columns=["participant_id", "session_id", "pathology", "percentage"])
    settings = {"caps_dir": g.caps_directory, "preprocessing": "pet-linear", "n_subjects": subjects(g),
                "pathology": g.pathology, "anomaly_degree": g.anomaly_degree}  # fmt: skip
    write_records(caps, table, settings, with_source_columns(table, frame))


# The modules (of this folder) whose code writes each kind's files: their code enters the generate
# step's fingerprint, so a changed generator generates again (generate_pool.py, which only decides the
# processes, is left out: the bytes do not depend on it). caps.py is in every kind's: it builds the
# generated files' folders and names.
_MASKS = ("roi_masks", "caps")  # which ROI masks, their names
_CLINICADL = ("generate_kinds", "generate_source", "anatomy", "synthetic", *_MASKS)  # anatomy: the masks
GENERATOR_MODULES = {
    "atrophy": ("synthetic", *_MASKS),
    "anatomy": ("anatomy", "synthetic", *_MASKS),
    "trivial": _CLINICADL,
    "random": _CLINICADL,
    "hypometabolic": _CLINICADL,
    "shepplogan": ("generate_shepplogan", "generate_source", "caps"),
    "artifacts": ("generate_artifacts", *_CLINICADL),
}
GENERATOR_DIR = Path(__file__).parent


def generator_source(kind: str) -> str:
    """sha256 (16 hex digits) of the code of `kind`'s generator modules: their syntax tree without
    comments, docstrings, line numbers or line endings (as a network of your own is fingerprinted by its
    source), so a comment or formatting edit generates nothing again and a code change does.

    >>> generator_source("atrophy") == generator_source("atrophy") != generator_source("anatomy")
    True
    """
    digest = hashlib.sha256()
    for name in GENERATOR_MODULES[kind]:
        digest.update(name.encode() + b"\0" + code_digest((GENERATOR_DIR / f"{name}.py").read_bytes()))
    return digest.hexdigest()[:16]


def code_digest(source: bytes) -> bytes:
    r"""sha256 of a module's code: `ast.dump` of its tree, the bare string statements (docstrings) dropped.

    >>> code_digest(b"'Doc.'\nx = 1  # one\n") == code_digest(b"x = (\r\n    1\r\n)\n")
    True
    >>> code_digest(b"x = 1\n") == code_digest(b"x = 2\n")
    False
    """
    tree = ast.parse(source.decode("utf-8").replace("\r\n", "\n"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [n for n in body if not _is_docstring(n)] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).digest()


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def write_roi_masks(ds: Dataset, image: Path) -> None:
    """The hippocampus masks of the anatomy kind (data/anatomy.py `region_masks`), left and right, on the
    grid of `image` (a generated image: they share their source's grid), where `dataset_roi_masks` says."""
    from neuroexec.data.anatomy import region_masks
    from neuroexec.data.synthetic import save_nifti

    grid = nib.load(image)
    _, left, right = region_masks(grid.shape[:3], grid.affine)
    for path, half in zip(dataset_roi_masks(ds), (left, right)):
        save_nifti(path, half, grid.affine)


def generate_inputs(g: Generate) -> tuple[Path, ...]:
    """The files of others a generation reads (the source's TSV and images, the masks): a change of one
    generates again. What cannot be listed yet is left out (the generation says why when it runs)."""
    if g.kind in ("atrophy", "anatomy", "shepplogan"):
        return ()
    found: list[Path] = [p for p in (g.participants_tsv,) if p is not None and p.is_file()]
    if g.kind == "trivial" and g.mask_path is not None:
        found += [g.mask_path / name for name in ("mask-1.nii", "mask-2.nii")]
    if g.kind == "hypometabolic":
        found.append(hypometabolic_mask(g))
    try:
        frame = sessions_of(g.caps_directory, g.participants_tsv)
        if g.kind in ("trivial", "hypometabolic"):
            frame = baseline(frame).head(subjects(g))
        elif g.kind == "random":
            frame = frame.head(1)
        found += [source_image(g, p, s) for p, s in zip(frame.participant_id, frame.session_id)]
    except (InputError, OSError, ValueError):
        pass
    return tuple(p for p in found if p.is_file())

"""PNG figures of a mean saliency map, drawn as the field draws statistical maps (nilearn's
`plot_stat_map`): the group's mean input image underneath on its own affine, three orthogonal cuts
in world (mm) coordinates with the orientation letters (L/R, A/P, S/I) and the cut positions written
on the panels, the map shown only above a threshold (a stated percentile of |map| over the brain,
written in the title) and a colour bar that says what its values are. The cuts go through the map's
largest cluster above the threshold (`nilearn.plotting.find_xyz_cut_coords`), not through the centre
of mass, which for two hippocampi sits on the midline between them.

A slice model's 2D maps are drawn one picture per slice index (`save_slice_map`), pixel for pixel.
Everything is drawn on a matplotlib Agg canvas of its own (no pyplot state, no display needed).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroexec.atomic import atomic_open

THRESHOLD_PERCENTILE = 99.0  # of |map| over the brain: the figure shows the top 1% of its voxels


@dataclass(frozen=True)
class FigureFacts:
    """What a saliency figure shows: where it cuts (world mm), from which value on the map is drawn
    (`threshold`, the `percentile` of |map| over the brain) and the top of its colour scale."""

    cut_coords: tuple[float, float, float]
    threshold: float
    percentile: float
    vmax: float

    def as_dict(self) -> dict:
        return {
            "cut_coords_mm": [round(c, 2) for c in self.cut_coords],
            "threshold": self.threshold,
            "threshold_percentile": self.percentile,
            "vmax": self.vmax,
        }


def map_threshold(saliency: np.ndarray, brain: np.ndarray | None, percentile: float) -> float:
    """The `percentile` of |saliency| over the `brain` voxels (all voxels when None or empty).

    >>> map_threshold(np.arange(10.0).reshape(1, 1, 10), None, 50.0)
    4.5
    """
    values = np.abs(np.asarray(saliency, dtype=np.float64))
    inside = values[brain] if brain is not None and brain.any() else values.ravel()
    return float(np.percentile(inside, percentile)) if inside.size else 0.0


def peak_cuts(stat_img, threshold: float) -> tuple[float, float, float]:
    """World (mm) coordinates of the cuts: in the largest connected cluster of |map| above
    `threshold` (nilearn's find_xyz_cut_coords)."""
    from nilearn.plotting import find_xyz_cut_coords

    with warnings.catch_warnings():  # an empty map: nilearn warns and returns the centre
        warnings.simplefilter("ignore")
        coords = find_xyz_cut_coords(stat_img, activation_threshold=float(threshold))
    return tuple(float(c) for c in coords)


def draw_saliency(
    saliency: np.ndarray,
    anatomy: np.ndarray,
    affine: np.ndarray,
    title: str,
    label: str,
    vmax: float = 0.5,
    percentile: float = THRESHOLD_PERCENTILE,
):
    """(matplotlib Figure, nilearn display, FigureFacts) of `saliency` (3D) over `anatomy` (3D, same
    shape), both on `affine`. The colour scale runs up to `vmax` x max |saliency|; a signed map is
    drawn with a two-sided colour map, an absolute one from red to yellow ('autumn': no colour of it
    is a grey the anatomy could have)."""
    import nibabel as nib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn.plotting import plot_stat_map

    saliency, anatomy = _checked(saliency, anatomy, 3)
    bad = int((~np.isfinite(saliency)).sum())  # a diverged model's NaN gradients: drawn as 0, said
    saliency = np.where(np.isfinite(saliency), saliency, 0.0).astype(np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    brain = anatomy > 0.1 * float(anatomy.max()) if anatomy.max() > 0 else None
    peak = float(np.abs(saliency).max())
    threshold = map_threshold(saliency, brain, percentile)
    top = peak * float(vmax)
    if not top > threshold:  # a scale that would hide everything: the whole range instead
        top = peak if peak > threshold else threshold + 1.0
    stat = nib.Nifti1Image(saliency, affine)
    cuts = peak_cuts(stat, threshold)
    facts = FigureFacts(cuts, threshold, float(percentile), top)
    signed = bool((saliency < 0).any())
    fig = Figure(figsize=(11, 4.4))
    FigureCanvasAgg(fig)
    heading = f"{title}  |  shown above {threshold:.3g} ({percentile:g}th percentile of |map| in the brain)"
    heading += f"  |  {bad} NaN or infinite voxel(s) drawn as 0" if bad else ""
    with warnings.catch_warnings():
        if peak == 0:  # a map of zeros: nothing above the threshold, nilearn warns of empty masks
            warnings.simplefilter("ignore", UserWarning)
        display = plot_stat_map(
            stat, bg_img=nib.Nifti1Image(anatomy, affine), cut_coords=cuts, display_mode="ortho",
            figure=fig, axes=(0.0, 0.0, 1.0, 0.9), threshold=threshold, vmax=top,
            cmap="cold_hot" if signed else "autumn", symmetric_cbar=signed, colorbar=True, annotate=True,
            draw_cross=True, black_bg=False, dim=0, title=None, resampling_interpolation="nearest",
        )  # fmt: skip
    fig.suptitle(heading, fontsize=10, y=0.97)
    _label_colorbar(display, label)
    _orientation_letters(display)
    return fig, display, facts


# nilearn writes L and R on the coronal and axial cuts; the other letters of each panel, at
# (x, y) in the panel's axes fraction: sagittal (y to the right, z up), coronal (z up), axial (y up).
_LETTERS = {
    "x": (("P", 0.03, 0.5), ("A", 0.97, 0.5), ("S", 0.5, 0.96), ("I", 0.5, 0.04)),
    "y": (("S", 0.5, 0.96), ("I", 0.5, 0.04)),
    "z": (("A", 0.5, 0.96), ("P", 0.5, 0.04)),
}


def _orientation_letters(display) -> None:
    for direction, letters in _LETTERS.items():
        cut = display.axes.get(direction)
        for letter, x, y in letters if cut is not None else ():
            cut.ax.text(x, y, letter, transform=cut.ax.transAxes, ha="center", va="center", fontsize=12,
                        color="black", zorder=10, bbox={"fc": "white", "ec": "none", "pad": 1})  # fmt: skip


def _label_colorbar(display, label: str) -> None:
    """Write `label` beside the display's colour bar (nilearn draws the bar without one)."""
    bar = getattr(display, "_colorbar_ax", None)
    if bar is not None:
        bar.set_ylabel(label, fontsize=9, labelpad=6)
        bar.yaxis.set_label_position("left")


def save_saliency_figure(
    path: Path,
    saliency: np.ndarray,
    anatomy: np.ndarray,
    affine: np.ndarray,
    title: str,
    label: str = "saliency",
    vmax: float = 0.5,
    percentile: float = THRESHOLD_PERCENTILE,
) -> FigureFacts:
    """Write the PNG of `draw_saliency` at `path`; what it shows (cuts, threshold) is returned.

    >>> blob = np.zeros((10, 12, 10)); blob[6:9, 7:10, 5:8] = 1.0
    >>> facts = save_saliency_figure(Path("map.png"), blob, np.ones((10, 12, 10)), np.eye(4), "gradients")
    >>> Path("map.png").read_bytes()[:4], [6 <= facts.cut_coords[0] <= 8]
    (b'\\x89PNG', [True])
    """
    fig, _, facts = draw_saliency(saliency, anatomy, affine, title, label, vmax, percentile)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())
    return facts


def _checked(saliency: np.ndarray, background: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Both as float32 arrays of one `ndim`-D shape (ValueError otherwise)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    background = np.asarray(background, dtype=np.float32)
    if saliency.shape != background.shape or saliency.ndim != ndim:
        raise ValueError(
            f"saliency {saliency.shape} and background {background.shape} must be the same {ndim}D shape"
        )
    return saliency, background


def save_slice_map(path: Path, saliency: np.ndarray, background: np.ndarray, vmax: float) -> None:
    """Write a PNG of a 2D mean saliency map (a slice model's, one per slice index: ClinicaDL draws
    2D maps as `map.jpg`) over the mean input slice, one pixel per voxel, first axis left to right and
    second bottom to top; the colour scale runs from 0 to `vmax` * max |saliency|.

    >>> save_slice_map(Path("slice.png"), np.random.rand(6, 7), np.ones((6, 7)), 0.5)
    >>> Path("slice.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave

    saliency, background = _checked(saliency, background, 2)
    saliency = np.abs(saliency)
    top = float(saliency.max()) * float(vmax)
    top = top if top > 0 else 1.0
    lo, hi = float(background.min()), float(background.max())
    grey = (background - lo) / (hi - lo) if hi > lo else np.zeros_like(background)
    heat = colormaps["hot"](np.clip(saliency / top, 0.0, 1.0))[..., :3]
    alpha = 0.8 * (saliency > 0)[..., None]
    picture = (1 - alpha) * grey[..., None] + alpha * heat
    buffer = io.BytesIO()
    imsave(buffer, np.clip(picture.transpose(1, 0, 2)[::-1], 0.0, 1.0), format="png")
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())

"""PNG figures of a mean saliency map: three orthogonal slices through the map's centre of mass, drawn
over the mean input image (matplotlib's Agg canvas: no display needed); a slice model's 2D maps, one
picture per slice index."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from neuroexec.atomic import atomic_open


def centre_of_mass(volume: np.ndarray) -> tuple[int, int, int]:
    """Voxel index of the centre of mass of |volume| (the volume centre when it is all zeros).

    >>> centre_of_mass(np.pad(np.ones((1, 1, 1)), ((2, 0), (0, 3), (1, 1))))
    (2, 0, 1)
    """
    weights = np.abs(np.asarray(volume, dtype=np.float64))
    total = weights.sum()
    if total <= 0 or not np.isfinite(total):
        return tuple(int(n // 2) for n in weights.shape)
    centre = []
    for axis, n in enumerate(weights.shape):
        other = tuple(a for a in range(weights.ndim) if a != axis)
        profile = weights.sum(axis=other)
        centre.append(int(round(float((profile * np.arange(n)).sum() / total))))
    return tuple(min(max(c, 0), n - 1) for c, n in zip(centre, weights.shape))


def _scaled(
    saliency: np.ndarray, background: np.ndarray, vmax: float, ndim: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """|saliency| and the background as float32 arrays of one `ndim`-D shape (ValueError otherwise),
    and the top of the colour scale: `vmax` * max |saliency| (1 for a map of zeros)."""
    saliency = np.abs(np.asarray(saliency, dtype=np.float32))
    background = np.asarray(background, dtype=np.float32)
    if saliency.shape != background.shape or saliency.ndim != ndim:
        raise ValueError(
            f"saliency {saliency.shape} and background {background.shape} must be the same {ndim}D shape"
        )
    top = float(saliency.max()) * float(vmax)
    return saliency, background, top if top > 0 else 1.0


def save_saliency_figure(
    path: Path, saliency: np.ndarray, background: np.ndarray, vmax: float, title: str
) -> None:
    """Write a PNG of three orthogonal slices of `saliency` (3D) over `background` (3D, same shape);
    the colour scale runs from 0 to `vmax` * max |saliency|.

    >>> save_saliency_figure(Path("map.png"), np.random.rand(6, 7, 8), np.ones((6, 7, 8)), 0.5, "gradients")
    >>> Path("map.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    saliency, background, top = _scaled(saliency, background, vmax, 3)
    i, j, k = centre_of_mass(saliency)
    views = (
        ("sagittal", saliency[i], background[i]),
        ("coronal", saliency[:, j], background[:, j]),
        ("axial", saliency[:, :, k], background[:, :, k]),
    )
    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)  # an Agg canvas of its own: no pyplot state, no display
    axes = fig.subplots(1, 3)
    image = None
    for ax, (name, sal, bg) in zip(axes, views):
        ax.imshow(bg.T, cmap="gray", origin="lower")
        image = ax.imshow(
            np.ma.masked_less_equal(sal, 0).T, cmap="hot", origin="lower", vmin=0, vmax=top, alpha=0.8
        )
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(f"{title} (slices through {i}, {j}, {k})")
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())


def save_slice_map(path: Path, saliency: np.ndarray, background: np.ndarray, vmax: float) -> None:
    """Write a PNG of a 2D mean saliency map (a slice model's, one per slice index: ClinicaDL draws
    2D maps as `map.jpg`) over the mean input slice, one pixel per voxel, oriented as the views of
    save_saliency_figure; the colour scale runs from 0 to `vmax` * max |saliency|.

    >>> save_slice_map(Path("slice.png"), np.random.rand(6, 7), np.ones((6, 7)), 0.5)
    >>> Path("slice.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave

    saliency, background, top = _scaled(saliency, background, vmax, 2)
    lo, hi = float(background.min()), float(background.max())
    grey = (background - lo) / (hi - lo) if hi > lo else np.zeros_like(background)
    heat = colormaps["hot"](np.clip(saliency / top, 0.0, 1.0))[..., :3]
    alpha = 0.8 * (saliency > 0)[..., None]
    picture = (1 - alpha) * grey[..., None] + alpha * heat
    buffer = io.BytesIO()
    imsave(buffer, np.clip(picture.transpose(1, 0, 2)[::-1], 0.0, 1.0), format="png")
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())

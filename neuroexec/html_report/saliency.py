"""The saliency maps of a data group on the page: for each interpretation of a best model, its mean and
std maps drawn over the anatomy as interpret draws its figure (inference/figure.py, on nilearn's
plot_stat_map: world coordinates, orientation letters, a threshold, cuts where the map is), the mean map in nilearn's interactive viewer (view_img), and the share of the
saliency inside the region mask (the ROI-mass summary of summary.json).

The viewer is nilearn's standalone page, embedded in an <iframe srcdoc>: its JavaScript (jQuery and
brainsprite) is inline in it; the one network address it has, a favicon link, is removed, so the page
loads nothing from the network.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from neuroexec.data.caps import CapsLayout
from neuroexec.html_report.elements import esc, image, new_figure, note, table
from neuroexec.html_report.group_figures import load_volume
from neuroexec.inference import figure
from neuroexec.maps.layout import MapsLayout

PARTS = 4  # part maps drawn for a roi or slice model
VIEWER_MM = 2.0  # the interactive viewer's voxel size at most
_NETWORK_LINK = re.compile(r"<link[^>]*href=\"https?://[^>]*>", re.IGNORECASE)


def viewer_threshold(img: nib.Nifti1Image, bg: nib.Nifti1Image | None) -> float:
    """The figures' threshold (inference/figure.py: a percentile of |map| over the brain of `bg`)."""
    values = img.get_fdata(dtype=np.float32)
    brain = None
    if bg is not None:
        anatomy = bg.get_fdata(dtype=np.float32)
        brain = anatomy > 0.1 * float(anatomy.max()) if anatomy.max() > 0 else None
    return figure.map_threshold(values, brain, figure.THRESHOLD_PERCENTILE)


def background(maps: MapsLayout, group: str, grid: tuple[int, ...]) -> nib.Nifti1Image | None:
    """An image of the group's CAPS (its first session) on the maps' grid, as the anatomy underneath;
    None when there is none (nilearn then draws its MNI152 template, packaged with it)."""
    try:
        recorded = json.loads(maps.group_maps_json(group).read_text())
        caps = Path(recorded["caps_directory"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded.get("multi_cohort"):
        return None
    first = CapsLayout(caps).first_nifti()
    if first is None:
        return None
    try:
        loaded = nib.load(str(first))
    except Exception:  # nibabel raises several unrelated types for a bad file
        return None
    return loaded if tuple(loaded.shape[:3]) == tuple(grid) else None


def static_figure(mean: nib.Nifti1Image, std: nib.Nifti1Image | None, bg, title: str) -> str:
    """The mean map (and the std map) over the anatomy as interpret draws its own figure
    (inference/figure.py's draw_saliency: cuts through the largest cluster, a threshold, orientation
    letters, a labelled colour bar); over nilearn's MNI152 template when the group's CAPS has no image
    on the map's grid (a roi model's regions)."""
    images = [("mean", mean), *([("std", std)] if std is not None else [])]
    pictures = []
    for kind, img in images:
        values = img.get_fdata(dtype=np.float32)
        if bg is not None:
            anatomy = bg.get_fdata(dtype=np.float32).reshape(values.shape)
            fig, _, _ = figure.draw_saliency(
                values, anatomy, img.affine, f"{kind}: {title}", f"{kind} |saliency|"
            )
        else:
            fig = _over_template(img, f"{kind}: {title}")
        pictures.append(image(fig, f"{title}: {kind} saliency map over the anatomy"))
    return "".join(pictures)


def _over_template(img: nib.Nifti1Image, title: str):
    from nilearn import plotting

    fig = new_figure(7.0, 2.6)
    fig.set_layout_engine(None)
    plotting.plot_stat_map(
        img,
        threshold=viewer_threshold(img, None),
        cmap="autumn",
        black_bg=False,
        colorbar=True,
        figure=fig,
        title=title,
    )
    return fig


def coarse(img: nib.Nifti1Image, mm: float = VIEWER_MM) -> nib.Nifti1Image:
    """`img` resampled to `mm` voxels when its own are finer (the viewer embeds every slice as PNG:
    a 1 mm t1-linear image would make it several MB), same orientation; else `img` itself."""
    from nilearn.image import resample_img

    zooms = np.asarray(img.header.get_zooms()[:3], dtype=np.float64)
    if zooms.min() >= mm:
        return img
    target = np.asarray(img.affine, dtype=np.float64)[:3, :3] * (mm / zooms)
    return resample_img(
        img, target_affine=target, interpolation="continuous", force_resample=True, copy_header=True
    )


def interactive_view(mean: nib.Nifti1Image, bg, title: str) -> str:
    """nilearn's viewer of the mean map, self-contained in an iframe."""
    from nilearn import plotting

    threshold = viewer_threshold(mean, bg)
    mean, bg = coarse(mean), coarse(bg) if bg is not None else None
    view = plotting.view_img(
        mean,
        **({"bg_img": bg} if bg is not None else {}),  # else nilearn's MNI152 template
        threshold=threshold,
        cmap="autumn",
        symmetric_cmap=False,
        black_bg=False,
        title=title,
    )
    page = _NETWORK_LINK.sub("", view.get_standalone())
    return f'<iframe class="viewer" title="{esc(title)}" srcdoc="{esc(page)}"></iframe>'


def mass_summary(summary: dict) -> str:
    """The ROI-mass summary: how much of the saliency lies in the region, against its share of the brain."""
    mask = summary.get("mask") or {}
    rows = [
        ["maps averaged", summary.get("used", "?")],
        ["method", summary.get("method", "?")],
        ["target", summary.get("target", summary.get("target_node", "?"))],
    ]
    inside, share = mask.get("mass_inside"), mask.get("brain_share")
    if inside is not None and share:
        region = Path(str(mask.get("path", "mask"))).name.split(".")[0]
        rows += [
            [f"saliency mass in the {region} region", f"{100 * inside:.2f}%"],
            ["region's share of the brain", f"{100 * share:.2f}%"],
            ["ratio (1 = an even spread)", f"{inside / share:.2f}"],
        ]
    return table(["", ""], rows, css="summary")


def _load(path: Path) -> nib.Nifti1Image | None:
    try:
        loaded = nib.load(str(path)) if path.is_file() else None
    except Exception:  # nibabel raises several unrelated types for a bad file
        return None
    return loaded if loaded is not None and len(loaded.shape) == 3 else None


def mean_images(maps: MapsLayout, where: tuple[int, str, str, str]) -> tuple:
    """(mean, std, anatomy) images of an interpretation: its NIfTIs, or for a MAPS with the tensors
    only (ClinicaDL writes no NIfTI), the tensors placed on the grid of the group's CAPS image
    (neuroexec.inference.nifti_out.map_image: the image's header and affine). None where absent."""
    from neuroexec.inference.nifti_out import map_image

    split, metric, group, name = where
    mean = _load(maps.mean_map(split, metric, group, name, "image", 0, "nii.gz"))
    std = _load(maps.std_map(split, metric, group, name, "image", 0, "nii.gz"))
    if mean is not None:
        return mean, std, background(maps, group, mean.shape)
    volume = load_volume(maps.mean_map(split, metric, group, name, "image", 0))
    bg = background(maps, group, volume.shape) if volume is not None else None
    if volume is None or bg is None:
        return None, None, None
    spread = load_volume(maps.std_map(split, metric, group, name, "image", 0))
    std = map_image(spread, bg) if spread is not None and spread.shape == volume.shape else None
    return map_image(volume, bg), std, bg


def part_figures(maps: MapsLayout, where: tuple[int, str, str, str], mode: str) -> list[str]:
    """The mean maps of a roi or slice model, which has no whole-image map: each region's NIfTI (on
    its part of the image, over the MNI152 template: a t1-linear image is in its space), or each
    slice's PNG figure as interpret drew it; the first PARTS of them."""
    found = []
    if not mode:
        return found
    indices = sorted(int(t.name.split("-")[-1].split("_")[0]) for t in maps.mean_maps(*where, mode))
    for k in indices[:PARTS]:
        part = _load(maps.mean_map(*where, mode, k, "nii.gz"))
        picture = maps.mean_map_figure(*where, mode, k)
        if part is not None:
            found.append(static_figure(part, None, None, f"{mode}-{k}"))
        elif picture.is_file():
            uri = "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode("ascii")
            found.append(f'<img src="{uri}" alt="{esc(mode)}-{k}: mean saliency map">')
    return found


def saliency_sections(maps: MapsLayout, where: tuple[int, str, str]) -> list[str]:
    """One block per interpretation of the best model `where` (split, metric, group)."""
    split, metric, group = where
    parts = []
    for path in maps.interpret_summaries(split, metric, group):
        name = path.parent.name.removeprefix("interpret-")
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            parts.append(note(f"unreadable {path}"))
            continue
        title = f"saliency {name}: {group}, split-{split}, best-{metric}"
        body = [f"<h4>{esc(title)}</h4>", mass_summary(summary)]
        mean, std, bg = mean_images(maps, (split, metric, group, name))
        if mean is not None:
            body += [
                static_figure(mean, std, bg, title),
                interactive_view(mean, bg, f"{name} split-{split} mean"),
            ]
        else:
            drawn = part_figures(maps, (split, metric, group, name), str(summary.get("mode", "")))
            body += drawn or [note(f"No whole-image mean map (mean_image-0_map) in {path.parent}.")]
        parts.append(f'<div class="saliency">{"".join(body)}</div>')
    return parts

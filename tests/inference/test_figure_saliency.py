"""The saliency figure (inference/figure.py) checked for content: cuts where the map is (in world mm),
the threshold leaving the anatomy grey outside the map's blob, orientation letters, the colour bar's
label, vmax setting the colour scale."""

from __future__ import annotations

import numpy as np
import pytest

from neuroexec.inference.figure import draw_saliency, save_saliency_figure

SHAPE = (30, 36, 30)
# 4 mm voxels, x flipped (as an LAS image): voxel and world axes disagree, so a cut given in voxels
# would land elsewhere
AFFINE = np.array([[-4.0, 0, 0, 60.0], [0, 4.0, 0, -72.0], [0, 0, 4.0, -50.0], [0, 0, 0, 1]])


def _grid():
    return np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")


def _brain_and_blobs():
    """An ellipsoid 'brain' (a grey ramp front to back), a large blob off-centre (peak 1 at voxel
    (21, 25, 10)) and a smaller one across the brain (peak 0.8 at voxel (8, 10, 20)) over noise of at
    most 0.05: the centre of mass of the two lies in neither. `big`: the large blob's voxels above a
    fifth of its peak."""
    xx, yy, zz = _grid()
    brain = ((xx - 15) / 13) ** 2 + ((yy - 18) / 16) ** 2 + ((zz - 15) / 13) ** 2 < 1
    big = np.exp(-((xx - 21) ** 2 + (yy - 25) ** 2 + (zz - 10) ** 2) / 8.0)
    small = 0.8 * np.exp(-((xx - 8) ** 2 + (yy - 10) ** 2 + (zz - 20) ** 2) / 8.0)
    noise = np.random.default_rng(0).random(SHAPE) * 0.05
    saliency = brain * noise + big + small
    anatomy = brain * (0.3 + 0.4 * yy / SHAPE[1])
    return anatomy.astype(np.float32), saliency.astype(np.float32), big > 0.2


def _voxel(world: tuple[float, float, float]) -> tuple[int, ...]:
    return tuple(int(round(v)) for v in (np.linalg.inv(AFFINE) @ np.array([*world, 1.0]))[:3])


def test_cuts_go_through_the_largest_blob_not_the_centre_of_mass(tmp_path):
    anatomy, saliency, big = _brain_and_blobs()
    path = tmp_path / "map.png"
    facts = save_saliency_figure(path, saliency, anatomy, AFFINE, "gradients", "mean |gradients|")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert big[_voxel(facts.cut_coords)], (facts.cut_coords, _voxel(facts.cut_coords))
    weights = np.abs(saliency)
    centre = tuple(int(round(c)) for c in np.argwhere(weights > 0.3).mean(axis=0))
    assert not big[centre]  # the old figure's centre of mass would have missed the blob
    record = facts.as_dict()
    assert record["threshold_percentile"] == 99.0 and record["threshold"] > 0.05  # above the noise
    assert record["cut_coords_mm"] == [round(c, 2) for c in facts.cut_coords]


def _pixel(fig, display, direction: str, world_xy: tuple[float, float]) -> np.ndarray:
    """The RGB (0-255) of the drawn figure at world point `world_xy` of panel `direction`."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    px, py = display.axes[direction].ax.transData.transform(world_xy)
    return rgba[int(round(rgba.shape[0] - py)), int(round(px)), :3].astype(int)


@pytest.fixture(scope="module")
def drawn():
    anatomy, saliency, _ = _brain_and_blobs()
    return draw_saliency(saliency, anatomy, AFFINE, "gradients", "mean |gradients|")


def test_the_threshold_leaves_the_anatomy_grey_outside_the_blob(drawn):
    fig, display, facts = drawn
    x, y, z = facts.cut_coords
    inside = _pixel(fig, display, "z", (x + 5.0, y + 5.0))  # beside the cross, in the blob
    assert inside[0] - inside[2] > 100, inside  # red to yellow: much more red than blue
    # in the brain on the axial cut, far from the blob: the noise (5% of the blob) is not drawn
    outside_world = tuple((AFFINE @ np.array([15, 12, _voxel(facts.cut_coords)[2], 1.0]))[:2])
    outside = _pixel(fig, display, "z", outside_world)
    assert np.ptp(outside) <= 2 and 40 < outside[0] < 230, outside  # a grey, the anatomy's


def test_orientation_letters_world_positions_and_colour_bar_label(drawn):
    fig, _, facts = drawn
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"L", "R", "A", "P", "S", "I"} <= texts
    x, y, z = facts.cut_coords
    assert {f"x={int(x)}", f"y={int(y)}", f"z={int(z)}"} <= texts  # nilearn writes the cuts in mm
    labels = {ax.get_ylabel() for ax in fig.axes}
    assert "mean |gradients|" in labels
    assert "99th percentile" in fig.get_suptitle()


@pytest.mark.parametrize("signed", [False, True])
def test_vmax_sets_the_top_of_the_colour_scale(signed):
    anatomy, saliency, _ = _brain_and_blobs()
    saliency = -saliency if signed else saliency
    tops = [draw_saliency(saliency, anatomy, AFFINE, "g", "v", vmax)[2].vmax for vmax in (1.0, 0.5)]
    assert tops[0] == pytest.approx(float(np.abs(saliency).max()))
    assert tops[1] == pytest.approx(0.5 * tops[0])


def test_a_map_of_zeros_is_drawn_without_error(tmp_path):
    anatomy, _, _ = _brain_and_blobs()
    facts = save_saliency_figure(tmp_path / "zero.png", np.zeros(SHAPE), anatomy, AFFINE, "g")
    assert (tmp_path / "zero.png").stat().st_size > 0 and facts.threshold == 0.0


def test_non_finite_values_are_drawn_as_zero_and_said(tmp_path):
    anatomy, saliency, big = _brain_and_blobs()
    saliency[0, 0, 0], saliency[1, 1, 1] = np.nan, np.inf
    fig, _, facts = draw_saliency(saliency, anatomy, AFFINE, "g", "v")
    assert big[_voxel(facts.cut_coords)] and np.isfinite(facts.threshold)
    assert "2 NaN or infinite voxel(s) drawn as 0" in fig.get_suptitle()

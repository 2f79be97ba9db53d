"""interpret on tiny data: saliency statistics against a float64 per-sample reference, selection,
file layout, NIfTI geometry, patch folding and the mask summary."""

from __future__ import annotations

import copy
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from inference_bench import SHAPE, image_tensor, make_bench, minmax

from neuroexec.errors import InputError
from neuroexec.inference.interpret import interpret_group, mask_mass
from neuroexec.inference.saliency import gradients, smoothgrad
from neuroexec.spec.model import Interpretation


def reference_maps(model, images: list[torch.Tensor], target: int, normalize: bool = False) -> np.ndarray:
    """|d out[target] / d x| of each image alone, in float64."""
    net = copy.deepcopy(model).double().eval()
    maps = []
    for image in images:
        x = image.double().unsqueeze(0).requires_grad_(True)
        net(x)[0, target].backward()
        g = x.grad[0].abs().numpy()
        maps.append(g / g.max() if normalize and g.max() > 0 else g)
    return np.stack(maps)


def group_images(bench, data) -> list[torch.Tensor]:
    return [image_tensor(data, p, s) for p, s in zip(bench.frame.participant_id, bench.frame.session_id)]


def predictions(model, images: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.stack(images)).argmax(1).numpy()


@pytest.mark.parametrize("normalize", ["none", "max"])
def test_mean_and_std_equal_float64_reference(bench, cohort_a, normalize):
    interp = Interpretation(name="g", target_node=1, normalize=normalize, figure=False)
    interpret_group(bench.task(interp), bench.ctx)
    ref = reference_maps(bench.model, group_images(bench, cohort_a), 1, normalize == "max")
    mean = torch.load(bench.maps.mean_map(0, "loss", "test", "g", "image", 0), weights_only=True)
    std = torch.load(bench.maps.std_map(0, "loss", "test", "g", "image", 0), weights_only=True)
    assert tuple(mean.shape) == (1, *SHAPE) == tuple(std.shape)
    scale = ref.max()
    np.testing.assert_allclose(mean.numpy(), ref.mean(0), atol=1e-5 * scale, rtol=1e-4)
    np.testing.assert_allclose(std.numpy(), ref.std(0), atol=1e-5 * scale, rtol=1e-3)


def test_outputs_files_summary_and_source_affine(bench, cohort_a):
    mask = cohort_a.mask
    interp = Interpretation(name="g", target="CN", save_individual=True, mask=mask)
    result = interpret_group(bench.task(interp), bench.ctx)
    out = bench.maps.interpret_dir(0, "loss", "test", "g")
    names = {p.name for p in out.iterdir()}
    individual = {
        f"{p}_{s}_image-0_map.pt" for p, s in zip(bench.frame.participant_id, bench.frame.session_id)
    }
    assert individual <= names
    assert {"mean_image-0_map.pt", "std_image-0_map.pt", "mean_image-0_map.nii.gz", "std_image-0_map.nii.gz",
            "mean_image-0_map.png", "summary.json", "data.tsv"} <= names  # fmt: skip
    assert (out / "mean_image-0_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    source = nib.load(str(sorted(cohort_a.caps_dir.glob("subjects/*/*/t1_linear/*.nii.gz"))[0]))
    mean_nii = nib.load(str(out / "mean_image-0_map.nii.gz"))
    assert mean_nii.shape == SHAPE
    np.testing.assert_allclose(mean_nii.affine, source.affine)
    mean = torch.load(out / "mean_image-0_map.pt", weights_only=True)
    np.testing.assert_allclose(mean_nii.get_fdata(), mean[0].numpy(), rtol=1e-6)

    # each individual map is its own small file: its storage holds one map, not a batch
    one = torch.load(out / sorted(individual)[0], weights_only=True)
    assert one.untyped_storage().nbytes() == one.numel() * 4 == int(np.prod(SHAPE)) * 4
    ref = reference_maps(bench.model, group_images(bench, cohort_a), 1)
    p, s = sorted(zip(bench.frame.participant_id, bench.frame.session_id))[0]
    i = list(zip(bench.frame.participant_id, bench.frame.session_id)).index((p, s))
    np.testing.assert_allclose(one[0].numpy(), ref[i][0], rtol=1e-4, atol=1e-6 * ref.max())

    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_node"] == 1 and summary["target"] == "CN"
    assert summary["used"] == len(bench.frame) and summary["skipped"] == 0 and summary["keep_true"] is None
    mask_array = nib.load(str(mask)).get_fdata() > 0
    m = mean[0].numpy().astype(np.float64)
    assert summary["mask"]["mass_inside"] == pytest.approx(m[mask_array].sum() / m.sum(), rel=1e-6)
    assert summary["mask"]["volume_share"] == pytest.approx(mask_array.mean())
    images = np.stack([np.asarray(x, dtype=np.float64)[0] for x in group_images(bench, cohort_a)])
    brain = images.mean(axis=0) > 0.1 * images.mean(axis=0).max()
    assert summary["mask"]["brain_share"] == pytest.approx((mask_array & brain).sum() / brain.sum())
    assert summary["mask"]["ratio"] == pytest.approx(
        summary["mask"]["mass_inside"] / summary["mask"]["brain_share"]
    )
    assert result["used"] == len(bench.frame)


@pytest.mark.parametrize("keep_true", [True, False])
def test_keep_true_selects_by_prediction(bench, cohort_a, keep_true):
    images = group_images(bench, cohort_a)
    labels = bench.frame.diagnosis.map({"AD": 0, "CN": 1}).to_numpy()
    correct = predictions(bench.model, images) == labels
    assert 0 < correct.sum() < len(correct), "fixture model should be right on some images only"
    wanted = correct if keep_true else ~correct
    interp = Interpretation(name="k", keep_true=keep_true, save_individual=True, figure=False)
    interpret_group(bench.task(interp), bench.ctx)
    out = bench.maps.interpret_dir(0, "loss", "test", "k")
    used = set(np.loadtxt(out / "data.tsv", dtype=str, skiprows=1, usecols=0, ndmin=1))
    assert used == set(bench.frame.participant_id[wanted])
    assert len(list(out.glob("sub-*_map.pt"))) == wanted.sum()
    ref = reference_maps(bench.model, [im for im, w in zip(images, wanted) if w], 0)
    mean = torch.load(out / "mean_image-0_map.pt", weights_only=True).numpy()
    np.testing.assert_allclose(mean, ref.mean(0), atol=1e-5 * ref.max(), rtol=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["used"], summary["skipped"]) == (wanted.sum(), (~wanted).sum())


def test_keep_true_needs_labels(bench):
    with pytest.raises(InputError, match="keep_true"):
        interpret_group(bench.task(Interpretation(name="k", keep_true=True), use_labels=False), bench.ctx)


def test_unknown_target_class_is_refused(bench):
    with pytest.raises(InputError, match="MCI"):
        interpret_group(bench.task(Interpretation(name="t", target="MCI")), bench.ctx)


def test_smoothgrad_without_noise_is_the_gradient(bench, cohort_a):
    x = torch.stack(group_images(bench, cohort_a)[:3])
    plain, out = gradients(bench.model, x, 1)
    smooth, clean = smoothgrad(bench.model, x, 1, samples=3, noise=0.0)
    torch.testing.assert_close(smooth, plain)
    torch.testing.assert_close(clean, out)
    noisy, _ = smoothgrad(bench.model, x, 1, samples=2, noise=0.2, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, plain)


@pytest.mark.parametrize("method", ["smoothgrad", "grad-cam"])
def test_other_methods_write_maps_of_the_input_shape(bench, method):
    interp = Interpretation(name=method, method=method, smoothgrad_samples=2, figure=False)
    interpret_group(bench.task(interp), bench.ctx)
    mean = torch.load(bench.maps.mean_map(0, "loss", "test", method, "image", 0), weights_only=True)
    assert tuple(mean.shape) == (1, *SHAPE)
    assert torch.isfinite(mean).all() and mean.max() > 0 and mean.min() >= 0


def test_multi_cohort_group_uses_both_caps(tmp_path, cohort_a, cohort_b):
    bench = make_bench(tmp_path, [("A", cohort_a), ("B", cohort_b)])
    interpret_group(bench.task(Interpretation(name="g", figure=False)), bench.ctx)
    images = [image_tensor(d, p, s) for d in (cohort_a, cohort_b) for p, s in
              zip(d.participants.participant_id, d.participants.session_id)]  # fmt: skip
    assert len(images) == len(bench.frame) == 12
    ref = reference_maps(bench.model, images, 0)
    mean = torch.load(bench.maps.mean_map(0, "loss", "test", "g", "image", 0), weights_only=True).numpy()
    np.testing.assert_allclose(mean, ref.mean(0), atol=1e-5 * ref.max(), rtol=1e-4)


def test_regression_model_explains_node_zero(tmp_path, cohort_a):
    bench = make_bench(tmp_path, [("A", cohort_a)], task="regression")
    interpret_group(bench.task(Interpretation(name="r", target_node=0, figure=False)), bench.ctx)
    summary = json.loads((bench.maps.interpret_summary(0, "loss", "test", "r")).read_text())
    assert summary["target_node"] == 0
    ref = reference_maps(bench.model, group_images(bench, cohort_a), 0)
    mean = torch.load(bench.maps.mean_map(0, "loss", "test", "r", "image", 0), weights_only=True).numpy()
    np.testing.assert_allclose(mean, ref.mean(0), atol=1e-5 * ref.max(), rtol=1e-4)


def test_patch_model_maps_per_index_and_folded(tmp_path, cohort_a):
    size = 6  # (12, 14, 12) -> 2 x 2 x 2 patches; the last 2 voxels along y are not covered
    bench = make_bench(tmp_path, [("A", cohort_a)], mode="patch", patch=size)
    interpret_group(bench.task(Interpretation(name="p")), bench.ctx)
    out = bench.maps.interpret_dir(0, "loss", "test", "p")
    images = group_images(bench, cohort_a)
    source = nib.load(str(sorted(cohort_a.caps_dir.glob("subjects/*/*/t1_linear/*.nii.gz"))[0]))
    expected = np.zeros(SHAPE)
    for k in range(8):
        a, b, c = (k // 4) * size, ((k // 2) % 2) * size, (k % 2) * size
        patches = [minmax(im[:, a : a + size, b : b + size, c : c + size]) for im in images]
        ref = reference_maps(bench.model, patches, 0).mean(0)
        mean = torch.load(out / f"mean_patch-{k}_map.pt", weights_only=True).numpy()
        np.testing.assert_allclose(mean, ref, atol=1e-5 * ref.max(), rtol=1e-4)
        expected[a : a + size, b : b + size, c : c + size] = ref[0]
        patch_nii = nib.load(str(out / f"mean_patch-{k}_map.nii.gz"))
        np.testing.assert_allclose(
            patch_nii.affine[:3, 3], source.affine[:3, :3] @ [a, b, c] + source.affine[:3, 3]
        )
    whole = nib.load(str(out / "mean_image-0_map.nii.gz"))
    np.testing.assert_allclose(whole.affine, source.affine)
    np.testing.assert_allclose(whole.get_fdata(), expected, atol=1e-5 * expected.max(), rtol=1e-4)
    assert (out / "mean_image-0_map.png").is_file()


def test_mask_mass_counts_absolute_mass():
    saliency = np.array([[[3.0, -1.0], [0.0, 0.0]]])
    mask = np.array([[[False, True], [False, False]]])
    assert mask_mass(saliency, mask) == {
        "mass_inside": 0.25,
        "volume_share": 0.25,
        "brain_share": 0.25,
        "ratio": 1.0,
    }
    brain = np.array([[[True, True], [False, False]]])
    assert mask_mass(saliency, mask, brain) == {
        "mass_inside": 0.25,
        "volume_share": 0.25,
        "brain_share": 0.5,
        "ratio": 0.5,
    }

"""save-tensors on tiny data: one input/output pair per item, equal to the CAPS tensor and to the model's
output, saved without batch storage; NIfTIs with the source affine (patches folded back)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from inference_bench import SHAPE, image_tensor, make_bench, minmax

from neuroexec.data.caps import CapsLayout
from neuroexec.inference.save_tensors import save_group_tensors
from neuroexec.spec.model import SaveTensors


def source(data, participant: str, session: str) -> nib.Nifti1Image:
    return nib.load(str(CapsLayout(data.caps_dir).t1_linear_nifti(participant, session)))


def test_classifier_tensors_equal_inputs_and_outputs(bench, cohort_a):
    result = save_group_tensors(bench.task(save_tensors=SaveTensors(nifti=True)), bench.ctx)
    assert result["tensors"] == 2 * len(bench.frame)
    for p, s in zip(bench.frame.participant_id, bench.frame.session_id):
        x = torch.load(
            bench.maps.tensor_file(0, "loss", "test", p, s, "image", 0, "input"), weights_only=True
        )
        y = torch.load(
            bench.maps.tensor_file(0, "loss", "test", p, s, "image", 0, "output"), weights_only=True
        )
        expected = image_tensor(cohort_a, p, s)
        torch.testing.assert_close(x, expected)
        with torch.no_grad():
            torch.testing.assert_close(y, bench.model(expected.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)
        assert y.untyped_storage().nbytes() == 2 * 4  # its own two logits, not the batch's
        assert x.untyped_storage().nbytes() == int(np.prod(SHAPE)) * 4
        nii = nib.load(str(bench.maps.nifti_file(0, "loss", "test", p, s, "input")))
        np.testing.assert_allclose(nii.affine, source(cohort_a, p, s).affine)
        np.testing.assert_allclose(nii.get_fdata(), expected[0].numpy(), rtol=1e-6)
        # a classifier's output is not an image: no output NIfTI
        assert not bench.maps.nifti_file(0, "loss", "test", p, s, "output").exists()


def test_reconstruction_nifti_output_is_the_reconstruction(tmp_path, cohort_a, cohort_b):
    bench = make_bench(tmp_path, [("A", cohort_a), ("B", cohort_b)], task="reconstruction")
    save_group_tensors(bench.task(save_tensors=SaveTensors(nifti=True), batch_size=5), bench.ctx)
    for data in (cohort_a, cohort_b):
        for p, s in zip(data.participants.participant_id, data.participants.session_id):
            expected = image_tensor(data, p, s)
            with torch.no_grad():
                recon = bench.model(expected.unsqueeze(0))[0]
            y = torch.load(
                bench.maps.tensor_file(0, "loss", "test", p, s, "image", 0, "output"), weights_only=True
            )
            torch.testing.assert_close(y, recon, rtol=1e-5, atol=1e-6)
            nii = nib.load(str(bench.maps.nifti_file(0, "loss", "test", p, s, "output")))
            assert nii.shape == SHAPE
            np.testing.assert_allclose(nii.affine, source(data, p, s).affine)
            np.testing.assert_allclose(nii.get_fdata(), recon[0].numpy(), rtol=1e-5, atol=1e-6)


def test_patch_autoencoder_tensors_per_patch_and_folded_nifti(tmp_path, cohort_a):
    size = 6
    bench = make_bench(tmp_path, [("A", cohort_a)], task="reconstruction", mode="patch", patch=size)
    save_group_tensors(bench.task(save_tensors=SaveTensors(nifti=True), batch_size=3), bench.ctx)
    for p, s in zip(bench.frame.participant_id, bench.frame.session_id):
        image = image_tensor(cohort_a, p, s)
        folded_in, folded_out = np.zeros(SHAPE), np.zeros(SHAPE)
        for k in range(8):
            a, b, c = (k // 4) * size, ((k // 2) % 2) * size, (k % 2) * size
            patch = minmax(image[:, a : a + size, b : b + size, c : c + size])  # each patch, as ClinicaDL
            x = torch.load(
                bench.maps.tensor_file(0, "loss", "test", p, s, "patch", k, "input"), weights_only=True
            )
            y = torch.load(
                bench.maps.tensor_file(0, "loss", "test", p, s, "patch", k, "output"), weights_only=True
            )
            torch.testing.assert_close(x, patch)
            with torch.no_grad():
                torch.testing.assert_close(y, bench.model(patch.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)
            folded_in[a : a + size, b : b + size, c : c + size] = patch[0].numpy()
            folded_out[a : a + size, b : b + size, c : c + size] = y[0].numpy()
        nii_in = nib.load(str(bench.maps.nifti_file(0, "loss", "test", p, s, "input")))
        nii_out = nib.load(str(bench.maps.nifti_file(0, "loss", "test", p, s, "output")))
        np.testing.assert_allclose(nii_in.affine, source(cohort_a, p, s).affine)
        np.testing.assert_allclose(nii_in.get_fdata(), folded_in, rtol=1e-6)
        np.testing.assert_allclose(nii_out.get_fdata(), folded_out, rtol=1e-5, atol=1e-6)


def test_without_nifti_only_tensors_are_written(bench):
    save_group_tensors(bench.task(save_tensors=SaveTensors(nifti=False)), bench.ctx)
    assert not bench.maps.nifti_dir(0, "loss", "test").exists()
    assert len(list(bench.maps.tensors_dir(0, "loss", "test").glob("*.pt"))) == 2 * len(bench.frame)

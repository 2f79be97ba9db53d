"""nifti_out: a written map keeps its source image's header (codes, units, voxel sizes, affine)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from neuroexec.errors import InputError
from neuroexec.inference.fold import moved_affine
from neuroexec.inference.nifti_out import map_image, moved_image, save_map


def _source(tmp_path, qcode: int = 1, scode: int = 4):
    affine = np.array([[-1.5, 0, 0, 40.0], [0, 1.5, 0, -60.0], [0, 0, 2.0, -30.0], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), affine)
    image.header.set_qform(affine, code=qcode)
    image.header.set_sform(affine, code=scode)
    image.header.set_xyzt_units("mm", "msec")
    path = tmp_path / "t1.nii.gz"
    nib.save(image, str(path))
    return path, affine


def test_map_keeps_the_source_header_codes_units_and_affine(tmp_path):
    path, affine = _source(tmp_path)
    out = tmp_path / "map.nii.gz"
    save_map(out, np.random.default_rng(0).random((3, 4, 5)), path)
    back = nib.load(str(out))
    q, qcode = back.header.get_qform(coded=True)
    s, scode = back.header.get_sform(coded=True)
    assert (int(qcode), int(scode)) == (1, 4)
    np.testing.assert_allclose(q, affine, atol=1e-5)
    np.testing.assert_allclose(s, affine)
    assert back.header.get_xyzt_units() == ("mm", "msec")
    assert back.header.get_zooms() == (1.5, 1.5, 2.0)
    assert back.get_data_dtype() == np.float32
    assert back.header.get_slope_inter() in ((1.0, 0.0), (None, None))


def test_a_moved_part_keeps_the_codes_with_its_own_affine(tmp_path):
    path, affine = _source(tmp_path, qcode=2, scode=3)
    part = moved_affine(affine, np.array([1.0, 2.0, 0.0]))
    image = moved_image(np.ones((2, 2, 5)), path, part)
    assert int(image.header.get_qform(coded=True)[1]) == 2
    assert int(image.header.get_sform(coded=True)[1]) == 3
    np.testing.assert_allclose(image.affine, part)
    assert image.header.get_xyzt_units() == ("mm", "msec")


def test_values_off_the_source_grid_are_refused(tmp_path):
    path, _ = _source(tmp_path)
    with pytest.raises(ValueError, match=r"not on the source image's grid \(3, 4, 5\)"):
        map_image(np.zeros((3, 4, 6)), path)


def test_an_unreadable_source_names_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="broken.nii.gz"):
        map_image(np.zeros((3, 4, 5)), bad)


# --- the NIfTIs that save-tensors and interpret write, on a CAPS whose images carry codes and units ---


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A tiny CAPS whose t1-linear images say scanner qform (1), MNI sform (4), mm and seconds."""
    from inference_bench import SHAPE, extract

    from neuroexec.data.caps import CapsLayout
    from neuroexec.data.synthetic import generate_atrophy_dataset

    data = generate_atrophy_dataset(tmp_path_factory.mktemp("coded"), subjects=4, resolution_mm=8.0, seed=3,
                                    shape=SHAPE)  # fmt: skip
    layout = CapsLayout(data.caps_dir)
    for p, s in zip(data.participants.participant_id, data.participants.session_id):
        path = layout.t1_linear_nifti(p, s)
        image = nib.load(str(path))
        image = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
        image.header.set_qform(image.affine, code=1)
        image.header.set_sform(image.affine, code=4)
        image.header.set_xyzt_units("mm", "sec")
        nib.save(image, str(path))
    extract(data)
    return data


def _assert_source_header(path):
    image = nib.load(str(path))
    assert int(image.header.get_qform(coded=True)[1]) == 1, path
    assert int(image.header.get_sform(coded=True)[1]) == 4, path
    assert image.header.get_xyzt_units() == ("mm", "sec"), path
    return image


def test_save_tensors_niftis_keep_the_header_and_latents_are_the_codes(tmp_path, coded):
    import torch
    from inference_bench import image_tensor, make_bench

    from neuroexec.inference.save_tensors import save_group_tensors
    from neuroexec.spec.model import SaveTensors

    bench = make_bench(tmp_path, [("A", coded)], task="reconstruction")
    result = save_group_tensors(bench.task(save_tensors=SaveTensors(nifti=True, latent=True)), bench.ctx)
    assert result["latents"] == len(bench.frame)
    for p, s in zip(bench.frame.participant_id, bench.frame.session_id):
        for kind in ("input", "output"):
            _assert_source_header(bench.maps.nifti_file(0, "loss", "test", p, s, kind))
        latent = torch.load(bench.maps.latent_file(0, "loss", "test", p, s, "image", 0), weights_only=True)
        with torch.no_grad():
            code, _ = bench.model.encode(image_tensor(coded, p, s).unsqueeze(0))
        torch.testing.assert_close(latent, code[0], rtol=1e-5, atol=1e-6)
        assert latent.untyped_storage().nbytes() == code[0].numel() * 4  # its own, not the batch's


def test_latent_of_a_network_without_an_encoder_is_refused(tmp_path):
    import torch

    from neuroexec.inference.save_tensors import latent_code

    with pytest.raises(InputError, match=r"maps.*has no latent code.*save_tensors.latent"):
        latent_code(torch.nn.Identity(), torch.zeros(1, 1, 2, 2, 2), tmp_path / "maps")


@pytest.mark.parametrize("save_nifti", [True, False])
def test_interpret_save_nifti_writes_each_map_as_nifti_with_the_header(tmp_path, coded, save_nifti):
    import torch
    from inference_bench import make_bench

    from neuroexec.inference.interpret import interpret_group
    from neuroexec.spec.model import Interpretation

    bench = make_bench(tmp_path, [("A", coded)])
    interp = Interpretation(name="g", save_individual=True, save_nifti=save_nifti, figure=save_nifti)
    interpret_group(bench.task(interp), bench.ctx)
    where = (0, "loss", "test", "g")
    _assert_source_header(bench.maps.mean_map(*where, "image", 0, "nii.gz"))
    summary = json.loads(bench.maps.interpret_summary(*where).read_text())
    assert ("figure" in summary) == save_nifti == bench.maps.mean_map_figure(*where, "image", 0).is_file()
    if save_nifti:  # the figure's cuts, in mm, are recorded: inside the image's field of view
        source = nib.load(str(bench.maps.mean_map(*where, "image", 0, "nii.gz")))
        voxel = np.linalg.inv(source.affine) @ np.array([*summary["figure"]["cut_coords_mm"], 1.0])
        assert all(-0.5 <= v <= n - 0.5 for v, n in zip(voxel[:3], source.shape))
    for p, s in zip(bench.frame.participant_id, bench.frame.session_id):
        nifti = bench.maps.individual_nifti(*where, p, s, "image", 0)
        assert nifti.is_file() == save_nifti
        if save_nifti:
            pt = torch.load(bench.maps.individual_map(*where, p, s, "image", 0), weights_only=True)
            np.testing.assert_allclose(_assert_source_header(nifti).get_fdata(), pt[0].numpy(), rtol=1e-6)


def test_a_vae_latent_is_its_mean_without_sampling():
    import torch

    from neuroexec.inference.save_tensors import latent_code
    from neuroexec.nn.vanilla_vae import VanillaDenseVAE

    torch.manual_seed(0)
    net = VanillaDenseVAE((1, 26, 22), latent_space_size=4, feature_size=8).eval()  # ClinicaDL's samples
    x = torch.rand(2, 1, 26, 22)  # in eval mode too: the code must be the mean
    with torch.no_grad():
        mu, _ = net.encode(x)
        first, second = latent_code(net, x, None), latent_code(net, x, None)
    torch.testing.assert_close(first, mu)
    torch.testing.assert_close(first, second)  # no sample drawn: the same code twice

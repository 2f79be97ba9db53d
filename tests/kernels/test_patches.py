from __future__ import annotations

import pytest
import torch

from neuroexec.kernels.patches import (
    extract_patches_reference,
    extract_patches_torch,
    extract_patches_triton,
    fold_patches_reference,
    fold_patches_torch,
    fold_patches_triton,
    patch_grid,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (shape, size, stride): overlapping, exact tiling with an uncovered edge, stride > size
CASES = [((3, 1, 7, 9, 11), 3, 2), ((2, 2, 8, 9, 10), 4, 4), ((1, 1, 9, 7, 8), 2, 3)]


def extract_fn(backend):
    return extract_patches_triton if backend.triton else extract_patches_torch


def fold_fn(backend):
    return fold_patches_triton if backend.triton else fold_patches_torch


@pytest.mark.parametrize("shape,size,stride", CASES)
def test_patch_grid_counts_positions_of_direct_slicing(shape, size, stride):
    want = tuple(len(range(0, n - size + 1, stride)) for n in shape[2:])
    assert patch_grid(shape, size, stride) == want


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,size,stride", CASES)
def test_extract_matches_direct_slicing(backend, dtype, shape, size, stride, make):
    volume = make(shape, dtype, backend.device)
    got = extract_fn(backend)(volume, size, stride)
    n = torch.tensor(patch_grid(shape, size, stride)).prod().item()
    assert got.shape == (shape[0] * n, shape[1], size, size, size)
    assert got.dtype == dtype and got.is_contiguous()
    assert torch.equal(got.double().cpu(), extract_patches_reference(volume.cpu(), size, stride))


def test_extract_follows_clinicadl_numbering(backend, make):
    # patch k of an image is the k-th of unfold(1).unfold(2).unfold(3) of [C, D, H, W], C order
    volume = make((2, 1, 7, 9, 11), torch.float32, backend.device)
    got = extract_fn(backend)(volume, 3, 2)
    for i, image in enumerate(volume):
        u = image.unfold(1, 3, 2).unfold(2, 3, 2).unfold(3, 3, 2)  # [C, nD, nH, nW, s, s, s]
        want = u.permute(1, 2, 3, 0, 4, 5, 6).reshape(-1, 1, 3, 3, 3)
        n = want.shape[0]
        assert torch.equal(got[i * n : (i + 1) * n], want)


def test_extract_reads_non_contiguous_volumes(backend, make):
    volume = make((2, 1, 11, 9, 7), torch.float32, backend.device).transpose(2, 4)
    got = extract_fn(backend)(volume, 3, 2)
    assert torch.equal(got.double().cpu(), extract_patches_reference(volume.cpu(), 3, 2))


@pytest.mark.parametrize("shape,size,stride", CASES)
def test_extract_writes_into_a_recycled_out(backend, shape, size, stride, make):
    extract = extract_fn(backend)
    n = torch.tensor(patch_grid(shape, size, stride)).prod().item()
    out = torch.full((shape[0] * n, shape[1], size, size, size), float("nan"), device=backend.device)
    for seed in (0, 1):  # the second image overwrites every value of the first
        volume = make(shape, torch.float32, backend.device, seed=seed)
        got = extract(volume, size, stride, out=out)
        assert got is out
        assert torch.equal(out.double().cpu(), extract_patches_reference(volume.cpu(), size, stride))


def test_extract_refuses_an_out_it_cannot_fill(backend, make):
    volume = make((2, 1, 7, 9, 11), torch.float32, backend.device)
    extract = extract_fn(backend)
    shape = (2 * 3 * 4 * 5, 1, 3, 3, 3)
    with pytest.raises(ValueError, match=r"out must be a torch.float32 tensor of shape \(120, 1, 3, 3, 3\)"):
        extract(volume, 3, 2, out=torch.empty(shape[0] - 1, *shape[1:], device=backend.device))
    with pytest.raises(ValueError, match="got a torch.float16 tensor"):
        extract(volume, 3, 2, out=torch.empty(shape, dtype=torch.float16, device=backend.device))
    with pytest.raises(ValueError, match="out must be contiguous"):
        extract(
            volume, 3, 2, out=torch.empty(3, 3, 3, 1, shape[0], device=backend.device).permute(4, 3, 0, 1, 2)
        )
    storage = torch.zeros(volume.numel() + 120 * 27, device=backend.device)
    source = storage[: volume.numel()].view(volume.shape).copy_(volume)
    with pytest.raises(ValueError, match="shares memory with the volume"):
        extract(source, 3, 2, out=storage[volume.numel() - 27 : volume.numel() - 27 + 120 * 27].view(shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fold_inverts_extract_when_stride_tiles_the_image(backend, dtype, make):
    volume = make((2, 2, 8, 12, 4), dtype, backend.device)
    back = fold_fn(backend)(extract_fn(backend)(volume, 4, 4), volume.shape, 4, 4)
    assert back.dtype == torch.float32
    assert torch.equal(back, volume.float())


@pytest.mark.parametrize("shape,size,stride", CASES)
def test_fold_averages_overlaps_like_the_reference(backend, shape, size, stride, make):
    # random patches (not cut from one image), so that overlapping values differ
    n = torch.tensor(patch_grid(shape, size, stride)).prod().item()
    patches = make((shape[0] * n, shape[1], size, size, size), torch.float32, backend.device)
    got = fold_fn(backend)(patches, shape, size, stride)
    want = fold_patches_reference(patches, shape, size, stride)
    assert torch.allclose(got.double().cpu(), want, rtol=1e-6, atol=1e-6)


def test_fold_leaves_uncovered_voxels_at_zero(backend):
    patches = torch.ones(2, 1, 4, 4, 4, device=backend.device)
    out = fold_fn(backend)(patches, (1, 1, 9, 4, 5), 4, 4)  # covers D 0..7, W 0..3
    assert torch.equal(out[:, :, :8, :, :4], torch.ones(1, 1, 8, 4, 4, device=backend.device))
    assert out[:, :, 8].abs().sum() == 0 and out[..., 4].abs().sum() == 0


def test_patch_larger_than_image_names_both_sizes(backend):
    with pytest.raises(ValueError, match=r"patch size 12 is larger than the image size \(7, 9, 11\)"):
        extract_fn(backend)(torch.zeros(1, 1, 7, 9, 11, device=backend.device), 12, 1)


def test_fold_rejects_patches_of_the_wrong_count(backend):
    with pytest.raises(ValueError, match="expected"):
        fold_fn(backend)(torch.zeros(3, 1, 4, 4, 4, device=backend.device), (1, 1, 8, 4, 4), 4, 4)


@pytest.mark.parametrize("size,stride", [(0, 1), (2, 0)])
def test_patch_grid_rejects_non_positive_sizes(size, stride):
    with pytest.raises(ValueError, match=">= 1"):
        patch_grid((8, 8, 8), size, stride)

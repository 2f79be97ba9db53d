"""cut_roi cuts the mask's box first and multiplies it by the mask's box (a region read from a
memory-mapped image touches only its box): the values must be those of ClinicaDL's extract_roi_tensor,
the whole image times the mask, then the planes where the mask has a voxel set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroexec.data.roi_extract import box_of, cut_roi


def whole_image_times_mask(image: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """ClinicaDL's order of operations: multiply the whole volume, then keep the box's planes."""
    product = image * torch.from_numpy(mask.astype(np.float64)).to(image.dtype)
    keep = [mask.any(tuple(b for b in range(3) if b != a)) for a in range(3)]
    kx, ky, kz = (torch.from_numpy(k) for k in keep)
    return product[:, kx][:, :, ky][:, :, :, kz].float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cropped_region_equals_the_whole_image_times_the_mask(dtype):
    g = torch.Generator().manual_seed(0)
    image = (torch.randn(1, 9, 10, 11, generator=g) * 100).to(dtype)  # negatives: -0.0 outside the mask
    image[0, 4, 5, 6] = float("nan")  # inside the box, outside the mask: nan * 0 stays nan
    mask = np.zeros((9, 10, 11), dtype=bool)
    mask[2:4, 3:8, 1:3] = True
    mask[6, 5, 9] = True  # a second blob: the box keeps planes 2, 3, 6 in x (the empty ones dropped)
    expected = whole_image_times_mask(image, mask)
    got = cut_roi(image, mask, uncropped_roi=False)
    assert got.shape == (1, 3, 5, 3) and got.dtype == torch.float32 and got.is_contiguous()
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    same = torch.isnan(expected) | (got == expected)
    assert bool(same.all())
    assert torch.equal(torch.signbit(got), torch.signbit(expected))  # the same -0.0 as ClinicaDL's
    assert torch.equal(cut_roi(image, mask, False, box_of(mask)), got)  # a kept box gives the same


def test_uncropped_region_is_the_whole_image_times_the_mask():
    image = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1, 2, 3] = True
    region = cut_roi(image, mask, uncropped_roi=True)
    assert region.shape == (1, 4, 5, 6)
    assert torch.equal(region, image * torch.from_numpy(mask.astype(np.float32)))

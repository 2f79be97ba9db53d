"""The one place that chooses between a Triton kernel and its torch fallback (placeholder: torch only;
the kernels issue completes it)."""

from __future__ import annotations

import torch


def extract_patches(volume: torch.Tensor, size: int, stride: int, kernels: str = "auto") -> torch.Tensor:
    """[B, C, D, H, W] -> contiguous [B * n, C, size, size, size], patch k of an image in C order of
    `unfold(2).unfold(3).unfold(4)` (ClinicaDL's patch numbering)."""
    b, c = volume.shape[:2]
    p = volume.unfold(2, size, stride).unfold(3, size, stride).unfold(4, size, stride)
    # p: [B, C, nD, nH, nW, s, s, s] -> [B, nD, nH, nW, C, s, s, s]
    p = p.permute(0, 2, 3, 4, 1, 5, 6, 7)
    return p.reshape(-1, c, size, size, size).contiguous()

"""3D patch extraction [B, C, D, H, W] -> [B*n, C, s, s, s] and its inverse (fold, averaging overlaps).

Patch k of an image is the k-th of `unfold(2,s,t).unfold(3,s,t).unfold(4,s,t)` flattened in C order
(ClinicaDL's numbering): k = (pd * nH + ph) * nW + pw, its corner at (pd*t, ph*t, pw*t). Voxels past
the last full patch are not covered (no padding). Floor: read the volume once, write the patches once.

Three implementations side by side: `*_triton`, `*_torch` (eager) and `*_reference` (loops, float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuroexec.kernels._triton import LazyKernel, check_float, next_pow2, tl


def patch_grid(shape: Sequence[int], size: int, stride: int) -> tuple[int, int, int]:
    """Patches per axis (nD, nH, nW) for the last three dimensions of `shape`.

    Example:
        >>> patch_grid((1, 1, 169, 208, 179), 50, 50)
        (3, 4, 3)
    """
    if int(size) < 1 or int(stride) < 1:
        raise ValueError(f"patch size and stride must be >= 1, got size={size}, stride={stride}")
    if len(shape) < 3:
        raise ValueError(f"expected a shape ending in (D, H, W), got {tuple(shape)}")
    spatial = tuple(int(d) for d in shape[-3:])
    if size > min(spatial):
        raise ValueError(f"patch size {size} is larger than the image size {spatial}")
    d, h, w = ((n - size) // stride + 1 for n in spatial)
    return d, h, w


def _check_volume(volume: torch.Tensor, size: int, stride: int) -> tuple[int, int, int]:
    if volume.dim() != 5:
        raise ValueError(f"expected a volume [B, C, D, H, W], got shape {tuple(volume.shape)}")
    check_float(volume, "volume", allow_f64=True)
    return patch_grid(volume.shape, size, stride)


def _patch_output(
    volume: torch.Tensor, grid: tuple[int, int, int], size: int, out: torch.Tensor | None
) -> torch.Tensor:
    """The output of `extract_patches`: `out` once checked, or a new tensor.

    A caller that cuts many images recycles one `out`: a fresh output above glibc's mmap threshold
    (32 MB) comes as new pages, and their page faults can cost more than the copy itself.
    """
    b, c = volume.shape[:2]
    shape = (b * grid[0] * grid[1] * grid[2], c, size, size, size)
    if out is None:
        return torch.empty(shape, dtype=volume.dtype, device=volume.device)
    if tuple(out.shape) != shape or out.dtype != volume.dtype or out.device != volume.device:
        raise ValueError(
            f"out must be a {volume.dtype} tensor of shape {shape} on {volume.device}, got a {out.dtype} "
            f"tensor of shape {tuple(out.shape)} on {out.device}"
        )
    if not out.is_contiguous():
        raise ValueError("out must be contiguous: patches are written as one block [B * n, C, s, s, s]")
    source, target = volume.untyped_storage(), out.untyped_storage()
    if source.device == target.device and (
        source.data_ptr() < target.data_ptr() + target.nbytes()
        and target.data_ptr() < source.data_ptr() + source.nbytes()
    ):
        raise ValueError("out shares memory with the volume: patches would overwrite their source")
    return out


def _check_patches(
    patches: torch.Tensor, image_shape: Sequence[int], size: int, stride: int
) -> tuple[int, int, int, int, int]:
    """Validate fold arguments; return (B, C, D, H, W)."""
    if len(image_shape) != 5:
        raise ValueError(f"image_shape must be (B, C, D, H, W), got {tuple(image_shape)}")
    b, c, d, h, w = (int(v) for v in image_shape)
    nd, nh, nw = patch_grid(image_shape, size, stride)
    expected = (b * nd * nh * nw, c, size, size, size)
    if tuple(patches.shape) != expected:
        raise ValueError(
            f"patches have shape {tuple(patches.shape)}; for image shape {tuple(image_shape)}, size {size} "
            f"and stride {stride} expected {expected}"
        )
    check_float(patches, "patches", allow_f64=True)
    return b, c, d, h, w


def _axis_count(n: int, size: int, stride: int, n_patches: int, device: torch.device) -> torch.Tensor:
    """How many patches cover each coordinate along one axis (0 past the last patch)."""
    x = torch.arange(n, device=device)
    first = torch.clamp(torch.div(x - size + stride, stride, rounding_mode="floor"), min=0)  # ceil((x-s+1)/t)
    last = torch.clamp(torch.div(x, stride, rounding_mode="floor"), max=n_patches - 1)
    return (last - first + 1).clamp_min(0)


# --------------------------------------------------------------------------------------------- triton
def _extract_kernel(
    v_ptr, o_ptr, C, nD, nH, nW, S, T, sB, sC, sD, sH, sW,
    ROWS: tl.constexpr, COLS: tl.constexpr,
):  # fmt: skip
    # Program (pc, r): rows [r*ROWS, (r+1)*ROWS) of the S*S rows (i, j) of output patch-channel pc,
    # each row S contiguous output voxels (COLS >= S, masked).
    pc = tl.program_id(0)
    c = pc % C
    p = pc // C  # b * n + k
    pw = p % nW
    ph = (p // nW) % nH
    pd = (p // (nW * nH)) % nD
    b = p // (nW * nH * nD)
    rows = tl.program_id(1) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, COLS)
    i = (rows // S).to(tl.int64)
    j = (rows % S).to(tl.int64)
    mask = (rows < S * S)[:, None] & (cols < S)[None, :]
    base = b.to(tl.int64) * sB + c.to(tl.int64) * sC + (pd * T).to(tl.int64) * sD
    base += (ph * T).to(tl.int64) * sH + (pw * T).to(tl.int64) * sW
    src = base + (i * sD + j * sH)[:, None] + cols.to(tl.int64)[None, :] * sW
    dst = pc.to(tl.int64) * S * S * S + rows.to(tl.int64)[:, None] * S + cols[None, :]
    tl.store(o_ptr + dst, tl.load(v_ptr + src, mask=mask), mask=mask)


def _fold_kernel(
    p_ptr, o_ptr, C, D, H, W, nD, nH, nW, S, T, KD, KH, KW,
    BLOCK: tl.constexpr,
):  # fmt: skip
    # Program (bc, blk): BLOCK output voxels of image b, channel c; gathers every patch covering each
    # voxel (at most K* = ceil(S/T) per axis) and writes the mean (0 where none covers it).
    bc = tl.program_id(0)
    b = bc // C
    c = bc % C
    e = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = e < D * H * W
    z = (e // (H * W)).to(tl.int32)
    y = ((e // W) % H).to(tl.int32)
    x = (e % W).to(tl.int32)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    cnt = tl.zeros([BLOCK], dtype=tl.float32)
    for kd in range(KD):
        pd = z // T - kd
        ok_d = inside & (pd >= 0) & (pd < nD) & (z - pd * T < S)
        for kh in range(KH):
            ph = y // T - kh
            ok_h = ok_d & (ph >= 0) & (ph < nH) & (y - ph * T < S)
            for kw in range(KW):
                pw = x // T - kw
                ok = ok_h & (pw >= 0) & (pw < nW) & (x - pw * T < S)
                patch = ((b * nD + pd) * nH + ph) * nW + pw
                off = (patch.to(tl.int64) * C + c) * S * S * S
                off += ((z - pd * T) * S + (y - ph * T)) * S + (x - pw * T)
                acc += tl.load(p_ptr + off, mask=ok, other=0.0).to(tl.float32)
                cnt += ok.to(tl.float32)
    out = tl.where(cnt > 0, acc / tl.maximum(cnt, 1.0), 0.0)
    tl.store(o_ptr + bc.to(tl.int64) * D * H * W + e, out, mask=inside)


_extract = LazyKernel(_extract_kernel)
_fold = LazyKernel(_fold_kernel)


def extract_patches_triton(
    volume: torch.Tensor, size: int, stride: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Triton path of `extract_patches`; reads `volume` through its strides (no contiguous copy)."""
    nd, nh, nw = _check_volume(volume, size, stride)
    check_float(volume, "volume")
    b, c = volume.shape[:2]
    out = _patch_output(volume, (nd, nh, nw), size, out)
    cols = next_pow2(size)
    rows = max(1, min(next_pow2(size * size), 4096 // cols))
    grid = (b * nd * nh * nw * c, -(-size * size // rows))
    _extract[grid](volume, out, c, nd, nh, nw, size, stride, *volume.stride(), ROWS=rows, COLS=cols)
    return out


def fold_patches_triton(
    patches: torch.Tensor, image_shape: Sequence[int], size: int, stride: int
) -> torch.Tensor:
    """Triton path of `fold_patches` (float32 output)."""
    b, c, d, h, w = _check_patches(patches, image_shape, size, stride)
    check_float(patches, "patches")
    nd, nh, nw = patch_grid(image_shape, size, stride)
    out = torch.empty(b, c, d, h, w, dtype=torch.float32, device=patches.device)
    k = -(-size // stride)
    block = min(1024, next_pow2(d * h * w))
    grid = (b * c, -(-d * h * w // block))
    _fold[grid](patches.contiguous(), out, c, d, h, w, nd, nh, nw, size, stride, k, k, k, BLOCK=block)
    return out


# ---------------------------------------------------------------------------------------------- torch
def extract_patches_torch(
    volume: torch.Tensor, size: int, stride: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Eager `extract_patches`: unfold views, then a single strided copy into the output."""
    nd, nh, nw = grid = _check_volume(volume, size, stride)
    b, c = volume.shape[:2]
    out = _patch_output(volume, grid, size, out)
    p = volume.unfold(2, size, stride).unfold(3, size, stride).unfold(4, size, stride)
    # [B, C, nD, nH, nW, s, s, s] -> [B, nD, nH, nW, C, s, s, s]
    out.view(b, nd, nh, nw, c, size, size, size).copy_(p.permute(0, 2, 3, 4, 1, 5, 6, 7))
    return out


def fold_patches_torch(
    patches: torch.Tensor, image_shape: Sequence[int], size: int, stride: int
) -> torch.Tensor:
    """Eager `fold_patches`: one slice-add per patch position, then division by the coverage count,
    which is separable: count(z, y, x) = cD(z) * cH(y) * cW(x)."""
    b, c, d, h, w = _check_patches(patches, image_shape, size, stride)
    nd, nh, nw = patch_grid(image_shape, size, stride)
    acc = torch.float64 if patches.dtype == torch.float64 else torch.float32
    out = torch.zeros(b, c, d, h, w, dtype=acc, device=patches.device)
    per_image = patches.view(b, nd * nh * nw, c, size, size, size)
    for k in range(nd * nh * nw):
        z, y, x = (k // (nh * nw)) * stride, ((k // nw) % nh) * stride, (k % nw) * stride
        out[:, :, z : z + size, y : y + size, x : x + size] += per_image[:, k]
    dev = patches.device
    count = (
        _axis_count(d, size, stride, nd, dev)[:, None, None]
        * _axis_count(h, size, stride, nh, dev)[None, :, None]
        * _axis_count(w, size, stride, nw, dev)[None, None, :]
    ).to(acc)
    return out.div_(count.clamp_min(1))  # uncovered voxels: 0 / 1 = 0


# ------------------------------------------------------------------------------------------ reference
def extract_patches_reference(volume: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Direct slicing, patch by patch, in float64."""
    nd, nh, nw = patch_grid(volume.shape, size, stride)
    v = volume.detach().double()
    out = []
    for img in v:
        for pd in range(nd):
            for ph in range(nh):
                for pw in range(nw):
                    z, y, x = pd * stride, ph * stride, pw * stride
                    out.append(img[:, z : z + size, y : y + size, x : x + size])
    return torch.stack(out)


def fold_patches_reference(
    patches: torch.Tensor, image_shape: Sequence[int], size: int, stride: int
) -> torch.Tensor:
    """Mean over covering patches, voxel sums and counts kept separately, in float64."""
    b, c, d, h, w = (int(v) for v in image_shape)
    nd, nh, nw = patch_grid(image_shape, size, stride)
    total = torch.zeros(b, c, d, h, w, dtype=torch.float64)
    count = torch.zeros(b, c, d, h, w, dtype=torch.float64)
    p = patches.detach().double().cpu()
    k = 0
    for i in range(b):
        for pd in range(nd):
            for ph in range(nh):
                for pw in range(nw):
                    z, y, x = pd * stride, ph * stride, pw * stride
                    total[i, :, z : z + size, y : y + size, x : x + size] += p[k]
                    count[i, :, z : z + size, y : y + size, x : x + size] += 1
                    k += 1
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))

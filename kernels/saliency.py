"""Saliency aggregation: running per-voxel sum and sum of squares of gradient maps over a data group.

Each batch of input gradients [B, *map_shape] is processed (|.| when `abs`, optional per-sample
max-normalisation) and added into a `SaliencyState`. Sums are float32 with Neumaier compensation terms
(true sum ~= sum + comp; Neumaier in the kernel, TwoSum in the fallback), so 10,000 maps keep float32 relative error near 1e-7 instead of growing
with the count. Normalisation divides each sample by max(|processed map|) (its max when abs=True),
leaving all-zero maps unchanged; with normalize="max" the gradients are read twice (max, then
accumulate), otherwise once.

Three implementations side by side: `saliency_accumulate_triton`, `saliency_accumulate_torch` (eager
torch, chunked over voxels so the state stays in cache) and `saliency_reference` (float64).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from neuroexec.kernels._triton import LazyKernel, check_float, next_pow2, tl

TORCH_CHUNK = 1 << 17  # voxels per torch chunk (measured best on a 2-core Xeon, 2 MiB L2 per core)
# The torch fallback adds each batch's partial sums into plain float32 block sums and folds the blocks
# into the compensated sums every BLOCK_BATCHES batches: compensation then costs ~1/16 of a pass per
# batch instead of 8 passes, and the error stays that of <= 16 float32 additions per block.
BLOCK_BATCHES = 16


@dataclass
class SaliencyState:
    """Running sums over `count` maps of shape `shape`: `sum`/`sumsq` float32 with compensations.

    Example:
        >>> s = SaliencyState.empty((8, 8, 8), "cpu")
        >>> s.mean().shape
        torch.Size([8, 8, 8])
    """

    count: int
    sum: torch.Tensor
    sum_comp: torch.Tensor
    sumsq: torch.Tensor
    sumsq_comp: torch.Tensor
    # Pending block sums of the torch fallback (zero after a fold, and always zero for the Triton path).
    sum_block: torch.Tensor | None = None
    sumsq_block: torch.Tensor | None = None
    block_batches: int = 0

    @classmethod
    def empty(cls, shape: Iterable[int], device: torch.device | str = "cpu") -> SaliencyState:
        shape = tuple(int(s) for s in shape)

        def z() -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float32, device=device)

        return cls(0, z(), z(), z(), z(), z(), z())

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.sum.shape)

    def total(self, squares: bool = False) -> torch.Tensor:
        """The per-voxel sum (of squares) in float64: main sum + compensation + pending block."""
        main, comp, block = (
            (self.sumsq, self.sumsq_comp, self.sumsq_block)
            if squares
            else (self.sum, self.sum_comp, self.sum_block)
        )
        out = main.double() + comp.double()
        return out + block.double() if block is not None else out

    def mean(self) -> torch.Tensor:
        """Per-voxel mean (float32); zeros when no map was added."""
        return (self.total() / max(self.count, 1)).float()

    def std(self) -> torch.Tensor:
        """Per-voxel population standard deviation (ddof=0), computed in float64 from the sums."""
        n = max(self.count, 1)
        mean = self.total() / n
        meansq = self.total(squares=True) / n
        return (meansq - mean * mean).clamp_min_(0.0).sqrt_().float()


def _check(grads: torch.Tensor, state: SaliencyState, normalize: str | None) -> torch.Tensor:
    """Validate; return grads as a contiguous [B, V] view."""
    if normalize not in (None, "max"):
        raise ValueError(f"normalize must be None or 'max', got {normalize!r}")
    check_float(grads, "grads", allow_f64=True)
    if tuple(grads.shape[1:]) != state.shape:
        raise ValueError(
            f"gradient maps have shape {tuple(grads.shape[1:])} but the state holds maps of shape {state.shape}"
        )
    if grads.device != state.sum.device:
        raise ValueError(f"grads are on {grads.device} but the state is on {state.sum.device}")
    for name in ("sum", "sum_comp", "sumsq", "sumsq_comp"):
        t = getattr(state, name)
        if t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError(f"state.{name} must be a contiguous float32 tensor (use SaliencyState.empty)")
    return grads.contiguous().view(grads.shape[0], -1)


# --------------------------------------------------------------------------------------------- triton
def _absmax_kernel(g_ptr, part_ptr, V, CHUNK, n_chunks, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    ch = tl.program_id(1)
    base = b.to(tl.int64) * V
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for off in range(0, CHUNK, BLOCK):
        idx = ch.to(tl.int64) * CHUNK + off + tl.arange(0, BLOCK)
        g = tl.load(g_ptr + base + idx, mask=idx < V, other=0.0).to(tl.float32)
        acc = tl.maximum(acc, tl.abs(g))
    tl.store(part_ptr + b * n_chunks + ch, tl.max(acc, axis=0))


def _accumulate_kernel(
    g_ptr, div_ptr, s_ptr, sc_ptr, q_ptr, qc_ptr, maps_ptr, B, V,
    BLOCK: tl.constexpr, ABS: tl.constexpr, NORM: tl.constexpr, MAPS: tl.constexpr,
):  # fmt: skip
    # One program = BLOCK voxels; loops over the batch, Neumaier-adding each sample into the state.
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < V
    s = tl.load(s_ptr + idx, mask=mask, other=0.0)
    sc = tl.load(sc_ptr + idx, mask=mask, other=0.0)
    q = tl.load(q_ptr + idx, mask=mask, other=0.0)
    qc = tl.load(qc_ptr + idx, mask=mask, other=0.0)
    off = idx  # int64 offsets of sample b, advanced by V per sample
    for b in range(B):
        g = tl.load(g_ptr + off, mask=mask, other=0.0).to(tl.float32)
        if ABS:
            g = tl.abs(g)
        if NORM:
            g = g / tl.load(div_ptr + b)
        if MAPS:
            tl.store(maps_ptr + off, g, mask=mask)
        t = s + g
        sc += tl.where(tl.abs(s) >= tl.abs(g), (s - t) + g, (g - t) + s)
        s = t
        g2 = g * g
        t = q + g2
        qc += tl.where(q >= g2, (q - t) + g2, (g2 - t) + q)
        q = t
        off += V
    tl.store(s_ptr + idx, s, mask=mask)
    tl.store(sc_ptr + idx, sc, mask=mask)
    tl.store(q_ptr + idx, q, mask=mask)
    tl.store(qc_ptr + idx, qc, mask=mask)


_max_kernel = LazyKernel(_absmax_kernel)
_acc_kernel = LazyKernel(_accumulate_kernel)


def saliency_accumulate_triton(
    grads: torch.Tensor,
    state: SaliencyState,
    abs: bool = True,
    normalize: str | None = None,
    return_maps: bool = False,
) -> torch.Tensor | None:
    """Triton path of `saliency_accumulate` (float32/bf16/fp16 grads)."""
    g = _check(grads, state, normalize)
    check_float(grads, "grads")
    b, v = g.shape
    block = min(1024, next_pow2(v))
    div = g.new_ones(b, dtype=torch.float32)
    if normalize == "max":
        chunk = block * min(16, -(-v // block))
        n_chunks = -(-v // chunk)
        part = torch.empty(b, n_chunks, dtype=torch.float32, device=g.device)
        _max_kernel[(b, n_chunks)](g, part, v, chunk, n_chunks, BLOCK=block)
        peak = part.amax(1)
        div = torch.where(peak > 0, peak, div)
    maps = torch.empty(b, v, dtype=torch.float32, device=g.device) if return_maps else div
    _acc_kernel[(-(-v // block),)](
        g, div, state.sum, state.sum_comp, state.sumsq, state.sumsq_comp, maps, b, v,
        BLOCK=block, ABS=abs, NORM=normalize == "max", MAPS=return_maps,
    )  # fmt: skip
    state.count += b
    return maps.view(grads.shape) if return_maps else None


# ---------------------------------------------------------------------------------------------- torch
def _two_sum_add(
    s: torch.Tensor, comp: torch.Tensor, v: torch.Tensor, t: torch.Tensor, u: torch.Tensor
) -> None:
    """s, comp += v in place, with Knuth's TwoSum: s + v == t + err exactly, err goes to comp.
    Branch-free (unlike Neumaier, used by the kernel; both keep true sum ~= s + comp). `v` is
    overwritten; `t` and `u` are scratch."""
    torch.add(s, v, out=t)
    torch.sub(t, s, out=u)  # bp = t - s
    v.sub_(u)  # v - bp
    u.neg_().add_(t)  # t - bp
    torch.sub(s, u, out=u)  # s - (t - bp)
    comp.add_(u).add_(v)
    s.copy_(t)


def saliency_accumulate_torch(
    grads: torch.Tensor,
    state: SaliencyState,
    abs: bool = True,
    normalize: str | None = None,
    return_maps: bool = False,
) -> torch.Tensor | None:
    """Eager-torch `saliency_accumulate`: per-voxel chunks that fit in cache, the batch reduced with one
    sum per chunk into float32 block sums, folded with TwoSum into the compensated sums every
    BLOCK_BATCHES batches (see `fold_blocks`)."""
    g = _check(grads, state, normalize)
    b, v = g.shape
    if state.sum_block is None or state.sumsq_block is None:
        state.sum_block, state.sumsq_block = torch.zeros_like(state.sum), torch.zeros_like(state.sum)
    div = None
    if normalize == "max":
        lo_, hi_ = torch.aminmax(g, dim=1)  # max |g| in one pass, without a full-size |g| temporary
        peak = torch.maximum(hi_, -lo_).float()
        div = torch.where(peak > 0, peak, torch.ones_like(peak)).unsqueeze(1)
    maps = torch.empty(b, v, dtype=torch.float32, device=g.device) if return_maps else None
    sb, qb = state.sum_block.view(-1), state.sumsq_block.view(-1)
    n = min(v, TORCH_CHUNK)
    buf = torch.empty(b, n, dtype=torch.float32, device=g.device)
    part = torch.empty(n, dtype=torch.float32, device=g.device)
    for lo in range(0, v, TORCH_CHUNK):
        hi = min(v, lo + TORCH_CHUNK)
        k = hi - lo
        x = maps[:, lo:hi] if maps is not None else buf[:, :k]
        if abs and g.dtype == torch.float32:
            torch.abs(g[:, lo:hi], out=x)  # copy and |.| in one pass
        else:
            x.copy_(g[:, lo:hi])  # bf16/fp16/f64 -> float32
            if abs:
                x.abs_()
        if div is not None:
            x.div_(div)
        sb[lo:hi].add_(torch.sum(x, 0, out=part[:k]))
        sq = torch.mul(x, x, out=buf[:, :k]) if maps is not None else x.mul_(x)
        qb[lo:hi].add_(torch.sum(sq, 0, out=part[:k]))
    state.count += b
    state.block_batches += 1
    if state.block_batches >= BLOCK_BATCHES:
        fold_blocks(state)
    return maps.view(grads.shape) if maps is not None else None


def fold_blocks(state: SaliencyState) -> None:
    """Add the pending block sums into the compensated sums (TwoSum) and clear them."""
    if state.sum_block is None or state.sumsq_block is None:
        return
    s, sc, sb = state.sum.view(-1), state.sum_comp.view(-1), state.sum_block.view(-1)
    q, qc, qb = state.sumsq.view(-1), state.sumsq_comp.view(-1), state.sumsq_block.view(-1)
    v = s.numel()
    n = min(v, TORCH_CHUNK)
    t, u = (torch.empty(n, dtype=torch.float32, device=s.device) for _ in range(2))
    for lo in range(0, v, TORCH_CHUNK):
        hi = min(v, lo + TORCH_CHUNK)
        k = hi - lo
        _two_sum_add(s[lo:hi], sc[lo:hi], sb[lo:hi], t[:k], u[:k])
        _two_sum_add(q[lo:hi], qc[lo:hi], qb[lo:hi], t[:k], u[:k])
    state.sum_block.zero_()
    state.sumsq_block.zero_()
    state.block_batches = 0


# ------------------------------------------------------------------------------------------ reference
def saliency_process_reference(grads: torch.Tensor, abs: bool = True, normalize: str | None = None):
    """The processed per-sample maps in float64 (|.|, then division by each sample's max |.|)."""
    g = grads.detach().double()
    if abs:
        g = g.abs()
    if normalize == "max":
        peak = g.reshape(g.shape[0], -1).abs().max(1).values
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        g = g / peak.view(-1, *([1] * (g.dim() - 1)))
    return g


def saliency_reference(
    batches: Iterable[torch.Tensor], abs: bool = True, normalize: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 mean and population std (ddof=0) over every map of every batch."""
    maps = torch.cat([saliency_process_reference(b, abs, normalize) for b in batches])
    return maps.mean(0), maps.std(0, correction=0)

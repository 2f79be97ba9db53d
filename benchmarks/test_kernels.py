"""Kernel benchmarks: neuroexec.ops (kernels="auto" on the bench device) vs the eager-torch way vs peers
(MONAI, TorchIO: skipped when not installed) vs a `copy_` of the same bytes (the floor). Captum is not
a peer here: its Saliency computes the gradients (network cost), not their aggregation.

Full t1-linear volumes 169x208x179 float32; batch 2 on CPU, 8 on CUDA (NEUROEXEC_BENCH_DEVICE=cuda).
"""

from __future__ import annotations

import pytest
import torch

from neuroexec import ops

IMAGE = (169, 208, 179)  # t1-linear cropped MNI volume
PATCH = 50


@pytest.fixture(scope="module")
def pair(device, batch_size):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(batch_size, 1, *IMAGE, generator=g)
    x = y + 0.05 * torch.randn(y.shape, generator=g)
    return x.to(device), y.to(device)


def copy_floor(run, nbytes: int, device) -> None:
    """copy_ of a tensor such that read + write traffic equals `nbytes`."""
    src = torch.rand(max(1, nbytes // 8), device=device)
    dst = torch.empty_like(src)
    run(lambda: dst.copy_(src), "floor", bytes=2 * src.nbytes)


# -------------------------------------------------------------------------------- reconstruction stats
@pytest.mark.benchmark(group="recon_stats")
def test_recon_stats_neuroexec(run, pair):
    x, y = pair
    run(lambda: ops.recon_stats(x, y), "neuroexec", bytes=x.nbytes + y.nbytes)


@pytest.mark.benchmark(group="recon_stats")
def test_recon_stats_eager(run, pair):
    x, y = pair
    dims = tuple(range(1, x.dim()))

    def eager():  # one pass per statistic, as written naively
        return ((x - y) ** 2).mean(dims), (x - y).abs().mean(dims), y.amax(dims)

    run(eager, "baseline", bytes=x.nbytes + y.nbytes)


@pytest.mark.benchmark(group="recon_stats")
def test_recon_stats_copy_floor(run, pair, device):
    copy_floor(run, pair[0].nbytes + pair[1].nbytes, device)


@pytest.mark.benchmark(group="recon_stats")
def test_recon_stats_monai_psnr(run, pair):
    metrics = pytest.importorskip("monai.metrics")
    x, y = pair
    psnr = metrics.PSNRMetric(max_val=1.0, reduction="none")
    run(lambda: psnr(y_pred=x, y=y), "peer", bytes=x.nbytes + y.nbytes)


# ------------------------------------------------------------------------------------ loss fwd + bwd
def _loss_step(loss_fn, x, y):
    xg = x.detach().requires_grad_()

    def step():
        xg.grad = None
        loss_fn(xg, y).backward()

    return step


@pytest.mark.benchmark(group="recon_loss")
def test_recon_loss_neuroexec(run, pair):
    x, y = pair
    run(_loss_step(ops.recon_loss, x, y), "neuroexec", bytes=5 * x.nbytes)  # fwd: x, y; bwd: x, y, grad


@pytest.mark.benchmark(group="recon_loss")
def test_recon_loss_eager_mse(run, pair):
    x, y = pair
    run(_loss_step(torch.nn.functional.mse_loss, x, y), "baseline", bytes=5 * x.nbytes)


@pytest.mark.benchmark(group="recon_loss")
def test_recon_loss_copy_floor(run, pair, device):
    copy_floor(run, 5 * pair[0].nbytes, device)


# ----------------------------------------------------------------------------------- saliency maps
def _saliency_bytes(grads: torch.Tensor) -> int:
    return grads.nbytes + 2 * 4 * grads[0].nbytes  # read grads; read + write sum, sumsq, 2 compensations


@pytest.mark.benchmark(group="saliency")
def test_saliency_neuroexec(run, pair):
    grads = pair[0] - 0.5
    state = ops.SaliencyState.empty(grads.shape[1:], grads.device)
    run(lambda: ops.saliency_accumulate(grads, state), "neuroexec", bytes=_saliency_bytes(grads))


@pytest.mark.benchmark(group="saliency")
def test_saliency_eager_per_sample(run, pair):
    grads = pair[0] - 0.5
    total = torch.zeros(grads.shape[1:], device=grads.device)
    total_sq = torch.zeros_like(total)

    def eager():  # ClinicaDL's way: one map at a time, |grad| summed into a running total
        for g in grads:
            m = g.abs()
            total.add_(m)
            total_sq.add_(m * m)

    run(eager, "baseline", bytes=_saliency_bytes(grads))


@pytest.mark.benchmark(group="saliency")
def test_saliency_copy_floor(run, pair, device):
    copy_floor(run, _saliency_bytes(pair[0]), device)


# -------------------------------------------------------------------------------- patch extraction
def _patch_bytes(volume: torch.Tensor) -> int:
    nd, nh, nw = ops.patch_grid(volume.shape, PATCH, PATCH)
    return 2 * volume.shape[0] * volume.shape[1] * nd * nh * nw * PATCH**3 * volume.element_size()


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_neuroexec(run, pair):
    v = pair[1]
    run(lambda: ops.extract_patches(v, PATCH, PATCH), "neuroexec", bytes=_patch_bytes(v))


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_neuroexec_per_image(run, pair):
    """As the extract step calls it: one image at a time. Each output (18 MB) stays under glibc's 32 MB
    mmap threshold and is recycled from the heap; the batched call's 36 MB output gets fresh pages (page
    faults) on every call, which is most of its time on CPU."""
    v = pair[1]
    run(lambda: [ops.extract_patches(img[None], PATCH, PATCH) for img in v], "variant", bytes=_patch_bytes(v))


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_neuroexec_into_out(run, pair):
    """Into one recycled output, as the extract step calls it over a dataset: no page faults."""
    v = pair[1]
    out = ops.extract_patches(v, PATCH, PATCH)
    run(lambda: ops.extract_patches(v, PATCH, PATCH, out=out), "variant", bytes=_patch_bytes(v))


def _source_order_extract(volume: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """extract_patches written as a scatter over the *source* layout (b, c, pd, i, ph, j, pw, k):
    compiled, Inductor then loops in source order and reads each cropped row once, contiguously."""
    b, c = volume.shape[:2]
    nd, nh, nw = ops.patch_grid(volume.shape, PATCH, PATCH)
    s = PATCH
    src = volume.unfold(2, s, s).unfold(3, s, s).unfold(4, s, s).permute(0, 1, 2, 5, 3, 6, 4, 7)

    def axis(n: int, dim: int) -> torch.Tensor:
        return torch.arange(n, device=volume.device).view([n if d == dim else 1 for d in range(8)])

    bb, cc, pd, i, ph, j, pw, k = (axis(n, d) for d, n in enumerate(src.shape))
    index = ((((bb * nd + pd) * nh + ph) * nw + pw) * c + cc) * s**3 + (i * s + j) * s + k
    out.view(-1).index_put_((index,), src)
    return out


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_compiled_source_order(run, pair, device):
    """What a loop in source order reaches (torch.compile). neuroexec does not ship it: compiling takes
    2 s with a warm Inductor cache and about 15 s without, against about 0.3 ms saved per image."""
    if device.type != "cpu":
        pytest.skip("a CPU experiment: on CUDA the Triton kernel is the fast path")
    v = pair[1]
    out = ops.extract_patches(v, PATCH, PATCH)
    compiled = torch.compile(_source_order_extract, dynamic=False)
    assert torch.equal(compiled(v, torch.empty_like(out)), out)
    run(lambda: compiled(v, out), "variant", bytes=_patch_bytes(v))


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_eager_unfold(run, pair):
    v = pair[1]

    def eager():
        p = v.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH).unfold(4, PATCH, PATCH)
        return p.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(-1, 1, PATCH, PATCH, PATCH).contiguous()

    run(eager, "baseline", bytes=_patch_bytes(v))


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_copy_floor(run, pair, device):
    copy_floor(run, _patch_bytes(pair[1]), device)


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_monai_gridpatch(run, pair):
    transforms = pytest.importorskip("monai.transforms")
    v = pair[1]
    grid = transforms.GridPatch(patch_size=(PATCH,) * 3)
    run(lambda: [grid(img) for img in v], "peer", bytes=_patch_bytes(v))


@pytest.mark.benchmark(group="extract_patches")
def test_extract_patches_torchio_gridsampler(run, pair):
    tio = pytest.importorskip("torchio")
    v = pair[1].cpu()
    subjects = [tio.Subject(t1=tio.ScalarImage(tensor=img)) for img in v]

    def sample():
        return [torch.stack([p["t1"].data for p in tio.GridSampler(s, PATCH, 0)]) for s in subjects]

    run(sample, "peer", bytes=_patch_bytes(v))

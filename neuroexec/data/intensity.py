"""Intensity normalisation of the items a network sees, as ClinicaDL's MinMaxNormalization does it.

ClinicaDL min-max normalises every item it loads when a model has `normalize = true`: the whole image
in image mode, each patch in patch mode. neuroexec normalises images when it extracts them, and
patches the same way ClinicaDL does, one by one, so that a model sees the same inputs in both tools.
"""

from __future__ import annotations

import torch


def _final(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Whether items of range [lo, hi] are already what min-max normalisation gives: [0, 1], or all 0."""
    return (lo == 0) & ((hi == 1) | (hi == 0))


def minmax_items_(batch: torch.Tensor) -> torch.Tensor:
    """(x - min) / (max - min) for each item `batch[i]`, in place; returns `batch`.

    Items that already span exactly [0, 1], or are all 0, are left as they are (no rounding, no work
    beyond finding their range). A constant item becomes zeros, where ClinicaDL would divide 0 by 0.

    Example:
        >>> minmax_items_(torch.tensor([[2.0, 4.0, 3.0], [5.0, 5.0, 5.0]]))
        tensor([[0.0000, 1.0000, 0.5000],
                [0.0000, 0.0000, 0.0000]])
    """
    if batch.numel() == 0:
        return batch
    dims = tuple(range(1, batch.dim()))  # any strides: tensors ClinicaDL saved are often not contiguous
    lo, hi = batch.amin(dims, keepdim=True), batch.amax(dims, keepdim=True)  # 8x faster than aminmax
    if not bool(_final(lo, hi).all()):
        span = hi - lo
        span = torch.where(span > 0, span, torch.ones_like(span))  # constant: (x - min) / 1 = 0
        batch.sub_(lo).div_(span)  # items already in [0, 1]: x - 0 and x / 1, exact
    return batch


def minmax_item(item: torch.Tensor) -> torch.Tensor:
    """`minmax_items_` of one item, never in place: `item` itself when it already spans [0, 1] or is
    all 0 (a cached or memory-mapped tensor stays untouched), else a new tensor.

    Example:
        >>> minmax_item(torch.tensor([1.0, 3.0]))
        tensor([0., 1.])
    """
    if item.numel() == 0:
        return item
    if bool(_final(item.amin(), item.amax())):
        return item
    return minmax_items_(item[None].clone(memory_format=torch.contiguous_format))[0]

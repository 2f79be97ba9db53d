"""The networks of a multi-network model known at plan time, from the spec alone: the plan, the
step kinds and the SLURM jobs read it before any image is extracted, without importing the training
package (`training/networks.count_parts` finds the same count on the data)."""

from __future__ import annotations

import math

from neuroexec.data.patch_extract import patch_counts
from neuroexec.data.slice_extract import planned_image_shape
from neuroexec.spec import model as spec_model


def planned_count(model: spec_model.Model, ds: spec_model.Dataset) -> int | None:
    """The networks of a multi-network model known at plan time, before any image is extracted: the
    regions of `roi_list`, the patches of the planned image shape, the slices along the direction less
    the discarded ones; None when the images' shape is not known yet (a CAPS without images). The same
    count as `training.networks.count_parts` finds on the data."""
    if model.mode == "roi" and model.roi is not None:
        return len(model.roi.names)
    shape = planned_image_shape(ds)
    if shape is None:
        return None
    if model.mode == "patch" and model.patch is not None:
        return int(math.prod(patch_counts((1, *shape), model.patch.size, model.patch.stride)))
    if model.mode == "slice" and model.slice is not None:
        return shape[model.slice.direction] - sum(model.slice.discarded)
    return None

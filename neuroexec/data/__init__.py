"""The data layer: CAPS paths, participants TSVs, splits, the synthetic dataset, tensor extraction and
torch Datasets. Import from the submodules (`neuroexec.data.caps`, ...) or from here."""

from __future__ import annotations

from neuroexec.data.caps import CapsLayout
from neuroexec.data.datasets import ImageDataset, PatchDataset, load_tensor
from neuroexec.data.extract import (
    ExtractionCounts,
    ExtractionPlan,
    extract_image,
    plan_extraction,
    run_extraction,
)
from neuroexec.data.participants import (
    SINGLE_COHORT,
    check_images_exist,
    combine_cohorts,
    encode_labels,
    load_multi_cohort,
    load_participants,
)
from neuroexec.data.patch_extract import PatchCut, extract_patches_to
from neuroexec.data.splits import make_splits, read_split_directory
from neuroexec.data.synthetic import GeneratedDataset, generate_atrophy_dataset

__all__ = [
    "SINGLE_COHORT",
    "CapsLayout",
    "ExtractionCounts",
    "ExtractionPlan",
    "GeneratedDataset",
    "ImageDataset",
    "PatchCut",
    "PatchDataset",
    "check_images_exist",
    "combine_cohorts",
    "encode_labels",
    "extract_image",
    "extract_patches_to",
    "generate_atrophy_dataset",
    "load_multi_cohort",
    "load_participants",
    "load_tensor",
    "make_splits",
    "plan_extraction",
    "read_split_directory",
    "run_extraction",
]

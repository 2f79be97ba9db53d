"""The keys of a dataset's `generate` table that each kind reads: the one table that
spec/generate_kinds.py (the generate step's fingerprint holds only these) and the `neuroexec generate`
command (one flag per key, ClinicaDL's option names) both read. A leaf module (standard library only),
so that `neuroexec generate --help` does not import torch.

>>> READS["random"][-4:]
('subjects', 'mean', 'sigma', 'seed')
"""

from __future__ import annotations

ENGINE_KINDS = ("atrophy", "anatomy")  # neuroexec's own: a known answer and its region's mask
ENGINE_KEYS = ("subjects", "kind", "sessions", "resolution_mm", "region", "seed", "subject_offset")
_SOURCE = ("caps_directory", "participants_tsv", "preprocessing", "tracer", "suvr_reference_region",
           "use_uncropped_image")  # fmt: skip
READS = {
    "trivial": (*_SOURCE, "subjects", "mask_path", "atrophy_percent", "seed"),
    "random": (*_SOURCE, "subjects", "mean", "sigma", "seed"),
    "shepplogan": (
        "subjects",
        "image_size",
        "cn_subtypes_distribution",
        "ad_subtypes_distribution",
        "smoothing",
        "extract_json",
        "seed",
    ),  # fmt: skip
    "hypometabolic": (
        "caps_directory",
        "participants_tsv",
        "use_uncropped_image",
        "subjects",
        "pathology",
        "anomaly_degree",
        "sigma",
        "mask_path",
        "seed",
    ),  # fmt: skip
    "artifacts": (
        *_SOURCE,
        "contrast",
        "gamma",
        "motion",
        "translation",
        "rotation",
        "num_transforms",
        "noise",
        "noise_std",
        "seed",
    ),  # fmt: skip
}

"""The kinds of a dataset's `generate` table: which keys each reads (only those enter the generate
step's fingerprint), what the generated CAPS holds (the preprocessing keys the dataset must say, so that
its models read the images written), and the checks of the table. neuroexec/data/generate_kinds.py
writes them.

>>> from neuroexec.spec.model import Generate
>>> output_preprocessing(Generate(kind="artifacts", motion=True, noise=True))
{'preprocessing': 'custom', 'custom_suffix': '_art-mot-noi.nii.gz'}
>>> step_config(Generate(kind="random", caps_directory=Path("/caps")))["sigma"]
0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuroexec.generate_keys import ENGINE_KEYS, ENGINE_KINDS, READS
from neuroexec.spec.model import Dataset, Generate, as_config

FROM_CAPS = ("trivial", "random", "hypometabolic", "artifacts")  # ClinicaDL's kinds reading a CAPS
KINDS = (*ENGINE_KINDS, "trivial", "random", "shepplogan", "hypometabolic", "artifacts")
DEFAULT_SUBJECTS = 300  # ClinicaDL's --n_subjects
DEFAULT_SIGMA = {"random": 0.5, "hypometabolic": 5.0}
# hypometabolic reads these pet-linear images, whatever the flags (ClinicaDL 1.6.1 fixes them)
HYPO_TRACER, HYPO_SUVR = "18FFDG", "cerebellumPons2"
SHEPPLOGAN_SUFFIX = "_space-SheppLogan_phantom.nii.gz"
HYPO_URL = "https://aramislab.paris.inria.fr/files/data/masks/hypo/"


def subjects(g: Generate) -> int:
    """`subjects`, ClinicaDL's default for its kinds when unset."""
    return g.subjects if g.subjects is not None else DEFAULT_SUBJECTS


def sigma(g: Generate) -> float:
    return g.sigma if g.sigma is not None else DEFAULT_SIGMA.get(g.kind, 0.0)


def step_config(g: Generate) -> dict[str, Any]:
    """The generate step's configuration: the keys the kind reads (atrophy's is its whole table). The
    step's fingerprint adds the digest of the generator's code (steps/generate.py), so a changed
    generator generates again."""
    if g.kind in ENGINE_KINDS:
        return {k: as_config(getattr(g, k)) for k in ENGINE_KEYS}
    config = {"kind": g.kind, **{k: as_config(getattr(g, k)) for k in READS[g.kind]}}
    config["subjects"] = subjects(g)
    if "sigma" in config:
        config["sigma"] = sigma(g)
    return config


def artifacts_tag(g: Generate) -> str:
    """ClinicaDL's `art-` tag of the artifacts added (motion, contrast, noise: `mot-con-noi`)."""
    chosen = [tag for flag, tag in ((g.motion, "mot"), (g.contrast, "con"), (g.noise, "noi")) if flag]
    return "-".join(chosen)


def hypometabolic_suffix(g: Generate) -> str:
    return f"_pat-{g.pathology}_deg-{int(g.anomaly_degree)}_pet.nii.gz"


def output_preprocessing(g: Generate) -> dict[str, Any]:
    """The preprocessing keys of the generated CAPS (those of its dataset): trivial and random keep the
    images' names, so their preprocessing; the others' names end otherwise (custom)."""
    if g.kind in ENGINE_KINDS:
        return {"preprocessing": "t1-linear"}
    if g.kind in ("trivial", "random"):
        out: dict[str, Any] = {"preprocessing": g.preprocessing}
        if g.preprocessing == "pet-linear":
            out.update(tracer=g.tracer, suvr_reference_region=g.suvr_reference_region)
        if g.use_uncropped_image:
            out["uncropped"] = True
        return out
    suffix = {
        "shepplogan": SHEPPLOGAN_SUFFIX,
        "hypometabolic": hypometabolic_suffix(g),
        "artifacts": f"_art-{artifacts_tag(g)}.nii.gz",
    }[g.kind]
    return {"preprocessing": "custom", "custom_suffix": suffix}


def hypometabolic_mask(g: Generate) -> Path:
    """The pathology mask: mask_path, else where ClinicaDL keeps the one it downloads."""
    if g.mask_path is not None:
        return g.mask_path
    folder = Path.home() / ".cache" / "clinicadl" / "ressources" / "masks_hypo"  # ClinicaDL's spelling
    return folder / f"mask_hypo_{g.pathology}.nii"


def generate_problems(ds: Dataset, add: Callable[[str, str], None]) -> None:
    """The problems of a dataset's `generate` table, each under its key."""
    g, key = ds.generate, f"datasets.{ds.name}"
    if g.kind in ENGINE_KINDS:
        if g.subjects is None or g.subjects < 4:
            add(f"{key}.generate.subjects", f"kind {g.kind} needs subjects, at least 4 (half AD, half CN)")
        if g.kind == "anatomy" and g.region != "hippocampus":
            add(f"{key}.generate.region", "kind anatomy simulates atrophy in the hippocampus only")
        if g.kind == "anatomy" and g.resolution_mm < 1:
            add(
                f"{key}.generate.resolution_mm",
                f"kind anatomy samples the 1 mm MNI152 template on ClinicaDL's t1-linear grid (169x208x179 "
                f"voxels of 1 mm) or a coarser one: resolution_mm must be at least 1, not {g.resolution_mm:g}",
            )
        if ds.preprocessing != "t1-linear":
            add(f"{key}.preprocessing", f"generate writes t1-linear images only, not {ds.preprocessing}")
        return
    _source_problems(g, f"{key}.generate", add)
    _kind_problems(g, f"{key}.generate", add)
    wanted = output_preprocessing(g)
    have = {"preprocessing": ds.preprocessing, "tracer": ds.tracer, "custom_suffix": ds.custom_suffix,
            "suvr_reference_region": ds.suvr_reference_region, "uncropped": ds.uncropped}  # fmt: skip
    if any(have[k] != wanted.get(k, False if k == "uncropped" else None) for k in have):
        keys = ", ".join(f"{k} = {_toml(v)}" for k, v in wanted.items())
        add(
            f"{key}.preprocessing",
            f"generate kind {g.kind} writes images its models read with {keys}: set them",
        )


def roi_problems(key: str, mode: str, ds: Dataset, add: Callable[[str, str], None]) -> None:
    """A model of mode roi (`key` its table) on a dataset generated with no template grid, hence no ROI
    masks: shepplogan's 2D phantoms. (The kinds reading a CAPS write the hippocampus masks.)"""
    if mode == "roi" and ds.generate is not None and ds.generate.kind == "shepplogan":
        add(
            f"{key}.mode",
            f"mode roi cuts regions by their masks on a template's grid; dataset {ds.name} is generated by kind "
            "shepplogan, 2D phantoms with neither: use mode image or slice",
        )


def _toml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f'"{value}"'


def _source_problems(g: Generate, key: str, add: Callable[[str, str], None]) -> None:
    if g.kind not in FROM_CAPS:
        return
    if g.caps_directory is None:
        add(f"{key}.caps_directory", f"kind {g.kind} reads the images of a CAPS: give caps_directory")
    elif not g.caps_directory.is_dir():
        add(f"{key}.caps_directory", f"CAPS folder not found: {g.caps_directory}")
    if g.participants_tsv is not None and not g.participants_tsv.is_file():
        add(f"{key}.participants_tsv", f"participants TSV not found: {g.participants_tsv}")
    if g.kind == "hypometabolic":
        return
    if g.preprocessing == "t1-extensive":
        add(f"{key}.preprocessing", "ClinicaDL 1.6.1 cannot generate from t1-extensive images: use t1-linear")
    pet = g.preprocessing == "pet-linear"
    for name in ("tracer", "suvr_reference_region"):
        if pet and getattr(g, name) is None:
            add(f"{key}.{name}", f"preprocessing pet-linear needs {name} (it is part of the file names)")
        if not pet and getattr(g, name) is not None:
            add(f"{key}.{name}", f"only read with preprocessing pet-linear, not {g.preprocessing}")


def _kind_problems(g: Generate, key: str, add: Callable[[str, str], None]) -> None:
    if g.kind == "trivial" and g.mask_path is not None:
        missing = [n for n in ("mask-1.nii", "mask-2.nii") if not (g.mask_path / n).is_file()]
        if missing:
            add(
                f"{key}.mask_path",
                f"{g.mask_path} must hold the masks mask-1.nii and mask-2.nii (no {missing[0]})",
            )
    if g.kind == "hypometabolic" and not hypometabolic_mask(g).is_file():
        where = hypometabolic_mask(g)
        how = (
            f"ClinicaDL downloads it from {HYPO_URL}mask_hypo_{g.pathology}.nii; neuroexec does not download: "
            "put it there or give mask_path"
        )
        add(f"{key}.mask_path", f"the {g.pathology} hypometabolism mask is not at {where} ({how})")
    if g.kind == "shepplogan":
        for label in ("cn", "ad"):
            values = getattr(g, f"{label}_subtypes_distribution")
            if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
                add(
                    f"{key}.{label}_subtypes_distribution",
                    f"the probabilities must sum to 1, not {sum(values):g}",
                )
    if g.kind == "artifacts" and not artifacts_tag(g):
        add(key, "kind artifacts adds nothing: set motion, contrast or noise (or several) to true")

"""`datasets.<name>.preprocessing` takes every preprocessing ClinicaDL 1.6.1 reads, with `tracer`,
`suvr_reference_region` and `custom_suffix` where the file pattern needs them; `validate` names the
key of each mistake; the extract step's config (its fingerprint) carries the preprocessing's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.data.tasks import ExtractTask
from neuroexec.errors import SpecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.spec import load_spec

BASE = """
version = 1
[datasets.d]
caps = "caps"
participants = "p.tsv"
{dataset}
"""


def write(tmp_path: Path, dataset: str, extra: str = "") -> Path:
    (tmp_path / "caps").mkdir(exist_ok=True)
    (tmp_path / "p.tsv").write_text("participant_id\tsession_id\tdiagnosis\nsub-01\tses-M000\tAD\n")
    path = tmp_path / "spec.toml"
    path.write_text(BASE.format(dataset=dataset) + extra)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_pet_linear_resolves_its_keys_and_the_extract_config_carries_them(tmp_path):
    spec = load_spec(
        write(tmp_path, 'preprocessing = "pet-linear"\ntracer = "18FFDG"\nsuvr_reference_region = "pons"')
    )
    ds = spec.datasets["d"]
    assert (ds.preprocessing, ds.tracer, ds.suvr_reference_region, ds.custom_suffix) == (
        "pet-linear",
        "18FFDG",
        "pons",
        None,
    )
    config = ExtractTask(ds, ExtractionMode.IMAGE).config()
    assert (config["preprocessing"], config["tracer"], config["suvr_reference_region"]) == (
        "pet-linear",
        "18FFDG",
        "pons",
    )


def test_a_t1_linear_extract_config_is_as_before(tmp_path):
    """No new keys for t1-linear: the fingerprints of existing extractions do not change."""
    config = ExtractTask(load_spec(write(tmp_path, "")).datasets["d"], ExtractionMode.IMAGE).config()
    assert not {"tracer", "suvr_reference_region", "custom_suffix"} & set(config)
    assert config["preprocessing"] == "t1-linear"


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        (
            'preprocessing = "pet-linear"\nsuvr_reference_region = "pons"',
            "datasets.d.tracer: preprocessing pet-linear needs tracer (it is part of the file names)",
        ),
        (
            'preprocessing = "pet-linear"\ntracer = "18FFDG"',
            "datasets.d.suvr_reference_region: preprocessing pet-linear needs suvr_reference_region",
        ),
        ('preprocessing = "custom"', "datasets.d.custom_suffix: preprocessing custom needs custom_suffix"),
        (
            'custom_suffix = "x_probability.nii.gz"',
            "datasets.d.custom_suffix: only read with preprocessing custom, not t1-linear",
        ),
        (
            'preprocessing = "flair-linear"\ntracer = "18FFDG"',
            "datasets.d.tracer: only read with preprocessing pet-linear",
        ),
        (
            'preprocessing = "t1-extensive"',
            "datasets.d.preprocessing: ClinicaDL 1.6.1 cannot read t1-extensive",
        ),
        ('preprocessing = "dwi-dti"', "datasets.d.preprocessing: ClinicaDL 1.6.1 cannot read dwi-dti"),
        (
            'preprocessing = "custom"\ncustom_suffix = "x.nii.gz"\nuncropped = true',
            "datasets.d.uncropped: custom images are read as they are",
        ),
    ],
)
def test_validate_names_the_key_of_each_mistake(tmp_path, dataset, expected):
    found = problems(write(tmp_path, dataset))
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("dataset", "key"),
    [
        ('preprocessing = "t1-nonlinear"', "datasets.d.preprocessing"),
        (
            'preprocessing = "pet-linear"\ntracer = "18FFDG"\nsuvr_reference_region = "brain"',
            "datasets.d.suvr_reference_region",
        ),
        ('preprocessing = "custom"\ncustom_suffix = "probability.nii"', "datasets.d.custom_suffix"),
    ],
)
def test_the_schema_refuses_unknown_values_naming_the_key(tmp_path, dataset, key):
    found = problems(write(tmp_path, dataset))
    assert any(p.startswith(f"{key}:") for p in found), found


def test_a_generated_dataset_is_t1_linear_only(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(
        'version = 1\n[datasets.g]\ngenerate = { subjects = 4 }\npreprocessing = "flair-linear"\n'
    )
    assert problems(path) == [
        "datasets.g.preprocessing: generate writes t1-linear images only, not flair-linear"
    ]


def test_a_cohort_of_another_preprocessing_is_refused(tmp_path):
    pet = 'preprocessing = "pet-linear"\ntracer = "18FFDG"\nsuvr_reference_region = "pons"'
    both = '[datasets.both]\ncohorts = [{ name = "A", dataset = "d" }]\n'
    found = problems(write(tmp_path, pet, both))
    assert found == [
        "datasets.both.cohorts[0].dataset: dataset d is pet-linear (tracer 18FFDG, suvr_reference_region pons), "
        "this dataset t1-linear: give both the same preprocessing"
    ]
    load_spec(write(tmp_path, pet, both.replace("\ncohorts", f"\n{pet}\ncohorts")))


def test_a_group_of_another_preprocessing_than_its_models_is_refused(tmp_path):
    pet = 'preprocessing = "pet-linear"\ntracer = "18FFDG"\nsuvr_reference_region = "pons"'
    rest = """[datasets.t1]
caps = "caps"
participants = "p.tsv"
[models.m]
maps = "maps/m"
dataset = "d"
[groups.g]
dataset = "{dataset}"
models = ["m"]
"""
    found = problems(write(tmp_path, pet, rest.format(dataset="t1")))
    assert found == [
        "groups.g.models[0]: models.m is trained on pet-linear (tracer 18FFDG, suvr_reference_region pons) "
        "images, dataset t1 holds t1-linear ones: evaluate it on a dataset of its preprocessing"
    ]
    load_spec(write(tmp_path, pet, rest.format(dataset="d")))

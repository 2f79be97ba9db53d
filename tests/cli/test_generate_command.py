"""`neuroexec generate KIND ...` (ClinicaDL 1.6.1's `generate`): the one-dataset spec it builds and
applies (the same command again does nothing, another one generates again, a user's file is kept, a
folder neuroexec did not generate is refused), its flags, and the spec checks of each kind (one sentence
naming the key, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.data.caps import CapsLayout
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.spec import load_spec
from neuroexec.spec.generate_kinds import step_config
from neuroexec.spec.model import Generate, as_config


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return generate_atrophy_dataset(
        tmp_path_factory.mktemp("src") / "caps", subjects=4, resolution_mm=8.0
    ).caps_dir


def _images(caps: Path) -> dict[str, bytes]:
    """The generated images (not the ROI masks beside them, in masks/)."""
    return {str(p.relative_to(caps)): p.read_bytes() for p in sorted((caps / "subjects").rglob("*.nii.gz"))}


def test_random_is_applied_then_up_to_date_then_generated_again(source, tmp_path, capsys):
    out = tmp_path / "random"
    command = [
        "generate",
        "random",
        str(source),
        str(out),
        "--preprocessing",
        "t1-linear",
        "--n_subjects",
        "2",
    ]
    assert main([*command, "--quiet"]) == 0
    first = _images(out)
    assert len(first) == 4 and (out / "data.tsv").is_file() and (out / "participants.tsv").is_file()
    (out / "subjects" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(command) == 0
    assert "Nothing to do" in capsys.readouterr().out and _images(out) == first
    assert main([*command, "--sigma", "2", "--quiet"]) == 0
    assert _images(out).keys() == first.keys() and _images(out) != first
    assert (out / "subjects" / "notes.txt").read_text() == "mine"
    spec = load_spec(CapsLayout(out).root / ".neuroexec" / "generate-random.toml")
    assert spec.datasets["random"].generate.sigma == 2.0 and spec.datasets["random"].caps == out.resolve()


def test_print_spec_shows_the_flags_as_generate_keys(source, tmp_path, capsys):
    tomllib = pytest.importorskip("tomllib")
    command = ["generate", "artifacts", str(source), str(tmp_path / "a"), "--preprocessing", "t1-linear",
               "--motion", "--translation", "1", "3", "--print-spec"]  # fmt: skip
    assert main(command) == 0
    doc = tomllib.loads(capsys.readouterr().out)
    dataset = doc["datasets"]["artifacts"]
    assert dataset["preprocessing"] == "custom" and dataset["custom_suffix"] == "_art-mot.nii.gz"
    generate = dataset["generate"]
    assert generate["kind"] == "artifacts" and generate["motion"] is True and generate["noise"] is False
    assert generate["translation"] == [1.0, 3.0] and generate["caps_directory"] == str(source.resolve())
    assert not (tmp_path / "a").exists()


def test_a_folder_neuroexec_did_not_generate_is_refused(source, tmp_path, capsys):
    assert main(["generate", "shepplogan", str(source), "--n_subjects", "1", "--image_size", "16"]) == 2
    assert "neuroexec did not generate" in capsys.readouterr().err


def test_shepplogan_needs_no_source_and_hypometabolic_says_where_the_mask_goes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "shep"
    assert main(["generate", "shepplogan", str(out), "-csd", "1", "0", "0", "--n_subjects", "2",
                 "--image_size", "16", "--quiet"]) == 0  # fmt: skip
    assert len(list(out.rglob("*_phantom.pt"))) == 4
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["generate", "hypometabolic", str(tmp_path), str(tmp_path / "hypo"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "mask_hypo_ad.nii" in err and "give mask_path" in err and "aramislab" in err


@pytest.mark.parametrize(
    ("generate", "dataset", "expected"),
    [
        ('{ kind = "trivial" }', "", "generate.caps_directory: kind trivial reads the images of a CAPS"),
        ('{ kind = "random", caps_directory = "nowhere" }', "", "generate.caps_directory: CAPS folder not found"),
        ('{ kind = "artifacts", caps_directory = "src", noise = true }', "",
         'preprocessing: generate kind artifacts writes images its models read with preprocessing = "custom", '
         'custom_suffix = "_art-noi.nii.gz": set them'),
        ('{ kind = "random", caps_directory = "src", preprocessing = "pet-linear" }', "",
         "generate.tracer: preprocessing pet-linear needs tracer"),
        ('{ kind = "shepplogan", cn_subtypes_distribution = [0.5, 0.2, 0.2] }',
         'preprocessing = "custom"\ncustom_suffix = "_space-SheppLogan_phantom.nii.gz"',
         "generate.cn_subtypes_distribution: the probabilities must sum to 1, not 0.9"),
        ('{ kind = "anatomy", subjects = 2 }', "", "generate.subjects: kind anatomy needs subjects, at least 4"),
    ],
)  # fmt: skip
def test_each_kind_checks_its_keys(source, tmp_path, capsys, generate, dataset, expected):
    (tmp_path / "src").symlink_to(source)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'version = 1\n[datasets.d]\ncaps = "out"\ngenerate = {generate}\n{dataset}\n')
    assert main(["validate", str(spec)]) == 2
    assert f"datasets.d.{expected}" in capsys.readouterr().err


def test_atrophy_fingerprint_is_its_whole_table_as_before():
    g = Generate(subjects=8, resolution_mm=8.0, seed=3)
    before = {k: v for k, v in as_config(g).items() if k in
              ("subjects", "kind", "sessions", "resolution_mm", "region", "seed", "subject_offset")}  # fmt: skip
    assert step_config(g) == before
    assert list(step_config(g)) == [
        "subjects",
        "kind",
        "sessions",
        "resolution_mm",
        "region",
        "seed",
        "subject_offset",
    ]


def test_a_model_on_a_clinicadl_kind_dataset_plans_then_trains(source, tmp_path, capsys):
    (tmp_path / "src").symlink_to(source)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        "version = 1\n[compute]\nworkers = 0\nbatch_size = 2\n"
        '[datasets.triv]\ncaps = "triv"\ngenerate = { kind = "trivial", caps_directory = "src", subjects = 2 }\n'
        '[models.cnn]\nmaps = "maps/cnn"\ndataset = "triv"\ntask = "classification"\nlabel = "diagnosis"\n'
        'architecture = "TinyCNN"\nsplit = { n_splits = 2, splits = [0] }\ntrain = { epochs = 1 }\n'
    )
    assert main(["plan", str(spec)]) == 0
    assert main(["apply", str(spec), "--quiet"]) == 0
    assert (tmp_path / "maps" / "cnn" / "split-0" / "best-loss" / "model.pth.tar").is_file()


def test_another_kind_into_the_same_folder_replaces_what_the_first_wrote(source, tmp_path):
    out = tmp_path / "out"
    common = [str(source), str(out), "--preprocessing", "t1-linear", "--n_subjects", "1", "--quiet"]
    assert main(["generate", "random", *common, "--mean", "3"]) == 0
    assert main(["generate", "trivial", *common]) == 0
    assert sorted(p.name for p in (out / "subjects").iterdir()) == ["sub-TRIV0", "sub-TRIV1"]
    assert "mean" not in (out / "commandline.json").read_text()


def test_a_changed_source_image_generates_again(tmp_path, capsys):
    own = generate_atrophy_dataset(tmp_path / "src", subjects=2, resolution_mm=8.0).caps_dir
    out = tmp_path / "out"
    command = ["generate", "random", str(own), str(out), "--preprocessing", "t1-linear", "--n_subjects", "1"]
    assert main([*command, "--quiet"]) == 0
    first = _images(out)
    capsys.readouterr()
    assert main(command) == 0 and "Nothing to do" in capsys.readouterr().out
    image = next(own.glob("subjects/sub-0000/ses-M000/t1_linear/*.nii.gz"))
    generate_atrophy_dataset(tmp_path / "other", subjects=2, resolution_mm=8.0, seed=9)
    image.write_bytes(
        next((tmp_path / "other").glob("subjects/sub-0000/ses-M000/t1_linear/*.nii.gz")).read_bytes()
    )
    capsys.readouterr()
    assert main([*command, "--quiet"]) == 0
    assert _images(out) != first

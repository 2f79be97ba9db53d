"""Paths a spec may not use, caught by `validate` with the key named (never a traceback at apply): a MAPS
that is the spec's folder, a CAPS or inside one, a file; a name over the file system's limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.errors import SpecError
from neuroexec.spec import load_spec
from neuroexec.spec.docs import schema_markdown

SPEC = """
version = 1
[datasets.demo]
generate = {{ subjects = 8, resolution_mm = 8 }}
[models.cnn]
maps = "{maps}"
dataset = "demo"
architecture = "TinyCNN"
{extra}
"""


def write(tmp_path: Path, maps: str = "maps/cnn", extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(maps=maps, extra=extra))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [str(p) for p in info.value.problems]


def only_problem(path: Path, key: str, phrase: str) -> str:
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path.resolve()}: {key}: ") and phrase in found[0], found[0]
    return found[0]


@pytest.mark.parametrize("maps", [".", "./", "sub/.."])
def test_maps_that_is_the_spec_folder_is_a_spec_error(tmp_path, maps):
    only_problem(write(tmp_path, maps), "models.cnn.maps", "the spec's own folder")


@pytest.mark.parametrize(
    "maps, phrase",
    [("data/demo", "is the CAPS of datasets.demo"), ("data/demo/maps", "is inside the CAPS of datasets.demo"),
     ("data", "holds the CAPS of datasets.demo")],
)  # fmt: skip
def test_maps_and_caps_never_share_a_folder(tmp_path, maps, phrase):
    only_problem(write(tmp_path, maps), "models.cnn.maps", phrase)


def test_maps_inside_another_models_maps_is_a_spec_error(tmp_path):
    extra = '[models.inner]\nmaps = "maps/cnn/inner"\ndataset = "demo"\narchitecture = "TinyCNN"\n'
    only_problem(write(tmp_path, extra=extra), "models.cnn.maps", "holds the MAPS of models.inner")


def test_maps_that_is_a_file_is_a_spec_error(tmp_path):
    (tmp_path / "maps").write_text("not a folder\n")
    only_problem(write(tmp_path, "maps"), "models.cnn.maps", "is a file")


def test_a_name_over_the_file_system_limit_is_a_spec_error(tmp_path):
    only_problem(
        write(tmp_path, "maps/" + "m" * 300),
        "models.cnn.maps",
        "300 bytes long, over this file system's limit",
    )


def test_a_long_caps_name_is_a_spec_error_not_a_traceback(tmp_path, capsys):
    """Checking that the CAPS exists used to raise OSError (File name too long) out of validate."""
    long = "c" * 256
    path = tmp_path / "spec.toml"
    path.write_text(
        f'version = 1\n[datasets.real]\ncaps = "{long}"\nparticipants = "{long}/participants.tsv"\n'
        '[models.cnn]\nmaps = "maps/cnn"\ndataset = "real"\n'
    )
    found = problems(path)
    assert [p.split(": ")[1] for p in found] == ["datasets.real.caps", "datasets.real.participants"]
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "datasets.real.caps" in err and "limit of" in err


def test_a_path_within_the_limits_is_valid(tmp_path):
    load_spec(write(tmp_path, "maps/" + "m" * 200))


def test_model_overwrite_defaults_to_false_and_needs_a_dataset(tmp_path):
    assert load_spec(write(tmp_path)).models["cnn"].overwrite is False
    assert load_spec(write(tmp_path, extra="overwrite = true")).models["cnn"].overwrite is True
    maps = tmp_path / "pretrained"
    maps.mkdir()
    (maps / "maps.json").write_text("{}")
    path = tmp_path / "pretrained.toml"
    path.write_text(f'version = 1\n[models.old]\nmaps = "{maps}"\noverwrite = true\n')
    only_problem(path, "models.old.overwrite", "only meaningful with `dataset`")


def test_schema_reference_documents_model_overwrite():
    rows = [line for line in schema_markdown().splitlines() if line.startswith("| `models.<name>.overwrite`")]
    assert len(rows) == 1 and "`false`" in rows[0] and "not a MAPS" in rows[0]


def test_a_group_or_map_name_too_long_for_its_result_files_is_a_spec_error(tmp_path):
    """The group's name is part of its prediction file's name (`<group>_image_level_prediction.tsv`)
    and an interpretation's of its folder's (`interpret-<name>`): validate says so, not predict."""
    group = "g" * 240  # a folder name that fits, a prediction file name (267 bytes) that does not
    extra = f'[groups.{group}]\ndataset = "demo"\nmodels = ["cnn"]\nskip_leak_check = true\n'
    extra += 'interpret = [{ name = "' + "i" * 250 + '" }]\n'
    found = problems(write(tmp_path, extra=extra))
    assert [p.split(": ")[1] for p in found] == [f"groups.{group}", f"groups.{group}.interpret[0].name"]
    assert "267 bytes long" in found[0] and "260 bytes long" in found[1]

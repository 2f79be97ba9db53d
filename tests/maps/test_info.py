"""read_maps_info: what a MAPS says about how its model reads data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.maps.info import read_maps_info


@pytest.mark.parametrize(
    "name, record, normalize",
    [
        ("maps.json", {"normalize": False}, False),
        ("maps.json", {"normalize": True}, True),
        ("maps.json", {}, True),  # ClinicaDL's default
        ("commandline.json", {"minmaxnormalization": False}, False),  # the older generation's key
    ],
)
def test_normalize_flag_of_every_generation(tmp_path, name, record, normalize):
    (tmp_path / name).write_text(json.dumps({"network_task": "classification", "mode": "patch", **record}))
    assert read_maps_info(tmp_path).normalize is normalize


def test_a_relative_recorded_path_is_found_from_here_or_beside_the_maps(tmp_path, monkeypatch):
    from neuroexec.maps.info import recorded_path

    project = tmp_path / "project"
    (project / "caps").mkdir(parents=True)
    (project / "maps").mkdir()
    monkeypatch.chdir(tmp_path)  # ClinicaDL ran in project/, we run elsewhere
    assert recorded_path("caps", project / "maps") == project / "caps"
    (tmp_path / "caps").mkdir()  # found from here first, as ClinicaDL itself would resolve it
    assert recorded_path("caps", project / "maps") == Path("caps")
    assert recorded_path("nowhere", project / "maps") == Path("nowhere")  # the caller names it
    assert recorded_path(str(project / "caps"), tmp_path) == project / "caps"

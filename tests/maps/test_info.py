"""read_maps_info: what a MAPS says about how its model reads data."""

from __future__ import annotations

import json

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

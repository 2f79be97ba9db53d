"""maps.json's num_networks is the number of parts per image, as ClinicaDL writes it, for one network as
for one network per part: ClinicaDL's predict soft-votes the parts to the image only when it is > 1
(otherwise it copies the part-level table as the image level)."""

from __future__ import annotations

import json

import pytest

from tests.training.training_specs import run_apply, write_spec

BODIES = {
    "image": ("", 1),
    "patch": ('mode = "patch"\npatch = { size = 12, stride = 10 }\n', 4),  # 1 x 2 x 2 of 21 x 26 x 22
    "slice": ('mode = "slice"\nslice = { direction = 2, mode = "single", discarded = [9, 10] }\n', 3),
}


@pytest.mark.parametrize("mode", list(BODIES))
def test_num_networks_counts_the_parts_of_an_image(tmp_path, mode):
    body, parts = BODIES[mode]
    run_apply(write_spec(tmp_path, {"m": body + "train = { epochs = 1 }"}))
    parameters = json.loads((tmp_path / "maps/m/maps.json").read_text())
    assert parameters["multi_network"] is False and parameters["num_networks"] == parts

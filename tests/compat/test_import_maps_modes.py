"""import-maps recognises ClinicaDL 1.x MAPS of the roi and slice modes and with one network per part
(`best-<metric>/network-<k>_model.pth.tar`), and says what neuroexec does with them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from neuroexec.compat.import_maps import describe_maps, render
from neuroexec.nn.networks import build_network
from tests.compat.conftest import ARCH, make_clinicadl_maps


def rewrite_maps_json(maps: Path, **changes) -> None:
    params = json.loads((maps / "maps.json").read_text())
    pre = {**params["preprocessing_dict"], **changes.pop("preprocessing_dict", {})}
    params.update(changes, preprocessing_dict=pre)
    (maps / "maps.json").write_text(json.dumps(params))


def test_roi_maps_is_recognised(tmp_path, tiny_data):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    rewrite_maps_json(maps, mode="roi", preprocessing_dict={"mode": "roi", "roi_list": ["leftHippocampus"],
                      "uncropped_roi": True, "prepare_dl": True})  # fmt: skip
    report = describe_maps(maps)
    assert report.usable and report.info.roi_list == ("leftHippocampus",)
    text = render(report)
    assert "mode:         roi (regions leftHippocampus, uncropped)" in text
    assert "cuts the regions from the masks of the CAPS" in text and "every roi by the one network" in text


def test_multi_network_slice_maps_lists_every_network(tmp_path, tiny_data):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    rewrite_maps_json(maps, mode="slice", multi_network=True, num_networks=3, input_size=[1, 20, 20],
                      preprocessing_dict={"mode": "slice", "slice_direction": 2, "slice_mode": "single",
                                          "discarded_slices": [8, 9], "prepare_dl": False})  # fmt: skip
    best = maps / "split-0" / "best-loss"
    (best / "model.pth.tar").unlink()
    for k in range(3):
        state = build_network(ARCH, (1, 20, 20), 2).state_dict()
        torch.save({"model": state, "epoch": 1, "name": ARCH}, best / f"network-{k}_model.pth.tar")
    report = describe_maps(maps)
    assert [b.network for b in report.best] == [0, 1, 2] and all(b.problem is None for b in report.best)
    assert report.usable and not any("no best model file" in p for p in report.problems)
    text = render(report)
    assert "slice (axial slices, single, discarded 8 + 9; one network per slice (3))" in text
    assert "slice k by network-<k>" in text
    (best / "network-1_model.pth.tar").unlink()
    problems = describe_maps(maps).problems
    assert any("network(s) 1 of 3 missing" in p for p in problems)


def test_weights_of_another_input_size_are_a_problem_not_a_crash(tmp_path, tiny_data):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    rewrite_maps_json(maps, mode="roi", multi_network=True, num_networks=2,
                      preprocessing_dict={"mode": "roi", "roi_list": ["leftHippocampus", "rightHippocampus"]})  # fmt: skip
    best = maps / "split-0" / "best-loss"
    (best / "model.pth.tar").unlink()
    for k, size in enumerate([(1, 20, 20, 20), (1, 40, 20, 20)]):  # the right region's box is another
        state = build_network(ARCH, size, 2).state_dict()
        torch.save({"model": state, "epoch": 1, "name": ARCH}, best / f"network-{k}_model.pth.tar")
    report = describe_maps(maps)
    assert [b.problem for b in report.best] == [None, None] and report.usable
    rewrite_maps_json(
        maps, mode="patch", preprocessing_dict={"mode": "patch", "patch_size": 20, "stride_size": 20}
    )
    network_1 = describe_maps(maps).best[1]  # a patch network of another size: its weights do not fit
    assert (
        network_1.network == 1
        and "weights do not fit Conv4_FC3 with input size [1, 20, 20, 20]" in network_1.problem
    )

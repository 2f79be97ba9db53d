"""The typed extraction mode: one value for the spec's models, a MAPS's record and the extract step, whose
text (the bracket of `dataset.X.extract[...]`) reads back to the same value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.extraction_mode import ExtractionMode
from neuroexec.maps.info import read_maps_info
from neuroexec.spec.model import Model, Patch
from neuroexec.steps.common import extract_id


@pytest.mark.parametrize(
    "mode", [ExtractionMode.IMAGE, ExtractionMode.patch(50, 50), ExtractionMode.patch(32, 8)]
)
def test_text_reads_back_to_the_same_mode(mode: ExtractionMode):
    assert ExtractionMode.parse(str(mode)) == mode
    assert hash(ExtractionMode.parse(str(mode))) == hash(mode)  # one extract step per mode in a set


def test_text_is_the_step_id_spelling():
    assert str(ExtractionMode.patch(50, 25)) == "patch-s50-t25"
    assert extract_id("adni", ExtractionMode.patch(50, 25)) == "dataset.adni.extract[patch-s50-t25]"
    assert extract_id("adni", ExtractionMode.IMAGE) == "dataset.adni.extract[image]"


@pytest.mark.parametrize("text", ["patch_50_50", "patch-50-50", "patch-s50", "roi", "patch-sx-t1", ""])
def test_other_text_is_refused(text: str):
    with pytest.raises(ValueError, match="not an extraction mode"):
        ExtractionMode.parse(text)


def test_a_maps_without_a_stride_strides_by_its_patch_size():
    assert ExtractionMode.of("patch", 32, None) == ExtractionMode.patch(32, 32)
    assert ExtractionMode.of("patch", None, None) == ExtractionMode.IMAGE  # no size: whole images
    assert ExtractionMode.of("roi", 32, 8) == ExtractionMode.IMAGE  # other ClinicaDL modes read images


def test_spec_model_and_maps_record_give_the_same_mode(tmp_path: Path):
    """A pretrained MAPS's predictions read the tensors a spec-trained model of the same patches reads:
    the same value, so the same extract step."""
    (tmp_path / "maps.json").write_text(
        json.dumps({"architecture": "Conv5_FC3", "preprocessing_dict": {"mode": "patch", "patch_size": 32}})
    )
    info = read_maps_info(tmp_path)
    model = Model(name="m", maps=tmp_path, dataset="d", mode="patch", patch=Patch(size=32, stride=32))
    assert info.extract_mode == model.extract_mode == ExtractionMode.patch(32, 32)
    assert Model(name="m", maps=tmp_path, dataset="d").extract_mode is ExtractionMode.IMAGE

"""ClinicaDL's preprocessing record has one writer (data/caps.py preprocessing_record): the maps.json
`preprocessing_dict` of a trained model and the CAPS's `tensor_extraction/extract_<mode>.json` agree,
uncropped images included (`datasets.X.uncropped = true`, ClinicaDL's use_uncropped_image)."""

from __future__ import annotations

import json

from neuroexec.data.caps import CapsLayout, nifti_pattern
from neuroexec.maps.layout import MapsLayout
from tests.helpers import make_tiny_caps
from tests.training.training_specs import run_apply

SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
seed = 0
deterministic = true
[datasets.u]
caps = "caps"
participants = "caps/participants.tsv"
uncropped = true
[models.cnn]
maps = "maps/cnn"
dataset = "u"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
"""


def _uncropped_caps(tmp_path):
    """A tiny CAPS whose t1-linear images carry the uncropped name (no `_desc-Crop`)."""
    caps_dir, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=8)
    caps = CapsLayout(caps_dir)
    for line in tsv.read_text().splitlines()[1:]:
        participant, session = line.split("\t")[:2]
        (cropped,) = caps.find_nifti(participant, session)
        cropped.rename(cropped.with_name(caps.nifti_name(participant, session, uncropped=True)))
    return caps


def test_a_model_trained_on_uncropped_images_records_the_uncropped_pattern(tmp_path):
    caps = _uncropped_caps(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    run_apply(tmp_path / "spec.toml")
    recorded = json.loads(MapsLayout(tmp_path / "maps" / "cnn").maps_json.read_text())["preprocessing_dict"]
    assert recorded["use_uncropped_image"] is True
    assert recorded["file_type"]["pattern"] == nifti_pattern(uncropped=True)
    assert "desc-Crop" not in recorded["file_type"]["pattern"]  # the old writer put the cropped one here
    extracted = json.loads(caps.extract_json("image").read_text())
    assert recorded["file_type"] == extracted["file_type"]  # one writer: the two records agree

"""ClinicaDL 1.6.1 itself (NEUROEXEC_CLINICADL=/path/to/clinicadl, its venv's python beside it) writes
the same extraction records as neuroexec for each preprocessing, names tensors as neuroexec does, fails
on t2-linear, t1-extensive and dwi-dti as neuroexec's docs say, and reads the pet-linear, flair-linear
and custom tensors neuroexec extracted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from neuroexec.data.caps import CapsLayout, preprocessing_record
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.preprocessings import Preprocessing
from tests.helpers import as_preprocessing, make_tiny_caps

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)
CASES = {
    "t1-linear": Preprocessing(),
    "flair-linear": Preprocessing("flair-linear"),
    "pet-linear": Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons"),
    "custom": Preprocessing("custom", custom_suffix="segm-graymatter_probability.nii.gz"),
}
RECORDS = """
import json, sys
from pathlib import Path
from clinicadl.prepare_data.prepare_data_utils import (
    compute_folder_and_file_type, extract_patch_path, extract_roi_path, extract_slice_path, get_parameters_dict)
out = {}
for name, extra in json.loads(sys.argv[1]).items():
    for uncropped in (False, True):
        p = get_parameters_dict(name, "image", False, "extract_image.json", uncropped, extra.get("custom_suffix") or "",
                                extra.get("tracer"), extra.get("suvr_reference_region"), "FA", "native")
        try:
            folder, p["file_type"] = compute_folder_and_file_type(p)
            out[f"{name} {uncropped}"] = [folder, p]
        except Exception as err:
            out[f"{name} {uncropped}"] = [type(err).__name__, str(err)]
image = Path("sub-01_ses-M000_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz")
mask = Path("tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-leftHippocampus_mask.nii.gz")
out["names"] = [extract_patch_path(image, 8, 8, 3), extract_slice_path(image, 2, "rgb", 11),
                extract_roi_path(image, mask, False)]
print(json.dumps(out))
"""
READ = """
import json, sys
from pathlib import Path
import pandas as pd
from clinicadl.utils.caps_dataset.data import CapsDatasetImage
out = {}
for caps in map(Path, sys.argv[1:]):
    frame = pd.read_csv(caps / "participants.tsv", sep="\\t").assign(cohort="single")
    record = json.loads((caps / "tensor_extraction/extract_image.json").read_text())
    data = CapsDatasetImage(caps, frame, record, label_presence=False)
    paths = [str(data._get_image_path(p, s, "single")) for p, s in zip(frame.participant_id, frame.session_id)]
    out[str(caps)] = {"paths": paths, "shape": list(data[0]["image"].shape)}
print(json.dumps(out))
"""


def clinicadl_python(script: str, *args: str) -> dict:
    python = Path(CLINICADL).parent / "python"
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_clinicadl_records_folders_and_names_are_neuroexecs(tmp_path):
    extra = {n: {k: v for k, v in p.params.items() if v} for n, p in CASES.items()}
    extra.update({"t2-linear": {}, "t1-extensive": {}, "dwi-dti": {}})
    theirs = clinicadl_python(RECORDS, json.dumps(extra))
    for name, pre in CASES.items():
        for uncropped in (False, True):
            folder, record = theirs[f"{name} {uncropped}"]
            assert folder == pre.tensor_folder
            assert record == preprocessing_record("image", uncropped, False, preprocessing=pre)
    assert theirs["t2-linear False"][0] == theirs["t1-extensive False"][0] == "NotImplementedError"
    assert theirs["dwi-dti False"] == ["KeyError", "'measure'"]
    layout = CapsLayout(tmp_path, CASES["pet-linear"])
    folder = layout.image_dir("sub-01", "ses-M000")
    folder.mkdir(parents=True)
    (
        folder
        / "sub-01_ses-M000_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz"
    ).touch()
    assert theirs["names"][:2] == [
        layout.patch_tensor("sub-01", "ses-M000", 8, 8, 3).name,
        layout.slice_tensor("sub-01", "ses-M000", "axi", "rgb", 11).name,
    ]


def test_clinicadl_reads_the_tensors_neuroexec_extracted(tmp_path):
    ours = {}
    for name in ("pet-linear", "flair-linear", "custom"):
        pre = CASES[name]
        caps, tsv = make_tiny_caps(tmp_path / name, n_subjects=2, shape=(12, 14, 12))
        as_preprocessing(caps, pre, "t1/spm/segmentation" if name == "custom" else None)
        plan = plan_extraction(load_participants(tsv), {"single": CapsLayout(caps, pre)}, "image")
        run_extraction(plan, normalize=True)
        ours[str(caps)] = [str(o) for item in plan.items for o in item.outputs]
    theirs = clinicadl_python(READ, *ours)
    assert {caps: read["paths"] for caps, read in theirs.items()} == ours
    assert all(read["shape"] == [1, 12, 14, 12] for read in theirs.values())

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neuroexec.data.participants import (
    check_images_exist,
    combine_cohorts,
    encode_labels,
    load_multi_cohort,
    load_participants,
)
from neuroexec.data.synthetic import GeneratedDataset
from neuroexec.errors import InputError


def _tsv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


ROWS = [
    {"participant_id": "sub-01", "session_id": "ses-M012", "diagnosis": "AD", "age": 70.0},
    {"participant_id": "sub-01", "session_id": "ses-M000", "diagnosis": "AD", "age": 69.0},
    {"participant_id": "sub-02", "session_id": "ses-M000", "diagnosis": "CN", "age": 71.0},
    {"participant_id": "sub-03", "session_id": "ses-M000", "diagnosis": "MCI", "age": 72.0},
]


def test_reads_file_with_string_ids_and_filters_diagnoses(tmp_path: Path) -> None:
    rows = ROWS + [{"participant_id": "0004", "session_id": "ses-M000", "diagnosis": "CN", "age": 1.0}]
    frame = load_participants(_tsv(tmp_path / "p.tsv", rows), "diagnosis", ["AD", "CN"])
    assert list(frame.columns[:2]) == ["participant_id", "session_id"]
    assert set(frame["diagnosis"]) == {"AD", "CN"} and len(frame) == 4
    assert "0004" in set(frame["participant_id"])  # not parsed as the integer 4


def test_baseline_keeps_first_session(tmp_path: Path) -> None:
    frame = load_participants(_tsv(tmp_path / "p.tsv", ROWS), "diagnosis", baseline=True)
    assert sorted(zip(frame.participant_id, frame.session_id)) == [
        ("sub-01", "ses-M000"),
        ("sub-02", "ses-M000"),
        ("sub-03", "ses-M000"),
    ]


def test_directory_per_diagnosis_fills_diagnosis(tmp_path: Path) -> None:
    ad = [
        {"participant_id": "sub-01", "session_id": "ses-M000"},
        {"participant_id": "sub-01", "session_id": "ses-M012"},
    ]
    cn = [{"participant_id": "sub-02", "session_id": "ses-M000"}]
    _tsv(tmp_path / "AD.tsv", ad)
    _tsv(tmp_path / "CN.tsv", cn)
    _tsv(tmp_path / "AD_baseline.tsv", ad[:1])
    _tsv(tmp_path / "CN_baseline.tsv", cn)
    frame = load_participants(tmp_path, "diagnosis", ["AD", "CN"])
    assert list(frame["diagnosis"]) == ["AD", "AD", "CN"]
    base = load_participants(tmp_path, "diagnosis", ["AD"], baseline=True)
    assert list(zip(base.participant_id, base.session_id, base.diagnosis)) == [("sub-01", "ses-M000", "AD")]
    with pytest.raises(InputError, match="no TSV for diagnosis MCI; available: AD, CN"):
        load_participants(tmp_path, "diagnosis", ["AD", "MCI"])


def test_split_test_folder_with_test_baseline(tmp_path: Path) -> None:
    _tsv(tmp_path / "test_baseline.tsv", ROWS[1:])
    frame = load_participants(tmp_path, "diagnosis", ["CN", "MCI"])
    assert list(frame.participant_id) == ["sub-02", "sub-03"]


def test_missing_id_column_is_named(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "p.tsv", [{"participant_id": "sub-01", "diagnosis": "AD"}])
    with pytest.raises(InputError, match="missing column.*session_id") as err:
        load_participants(path, "diagnosis")
    assert str(path) in str(err.value)


def test_absent_label_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no column 'mmse'"):
        load_participants(_tsv(tmp_path / "p.tsv", ROWS), "mmse")


def test_duplicates_are_listed(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"1 duplicated .*\n  sub-02 ses-M000"):
        load_participants(_tsv(tmp_path / "p.tsv", ROWS + [ROWS[2]]), "diagnosis")


def test_unknown_diagnosis(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="LMCI not found"):
        load_participants(_tsv(tmp_path / "p.tsv", ROWS), "diagnosis", ["AD", "LMCI"])


def test_table_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text("participant_id\tsession_id\tdiagnosis\n")
    with pytest.raises(InputError, match="no \\(participant, session\\) left"):
        load_participants(path, "diagnosis")


def test_nan_labels_are_listed(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[2]["age"] = None
    with pytest.raises(InputError, match=r"1 row\(s\) without a value for 'age':\n  sub-02 ses-M000"):
        load_participants(_tsv(tmp_path / "p.tsv", rows), "age")


def test_encode_labels_is_sorted() -> None:
    assert encode_labels(["CN", "AD", "MCI", "CN", float("nan")]) == {"AD": 0, "CN": 1, "MCI": 2}


def test_multi_cohort_tables(tmp_path: Path) -> None:
    _tsv(tmp_path / "a" / "p.tsv", ROWS)
    _tsv(
        tmp_path / "b" / "p.tsv", [{"participant_id": "sub-09", "session_id": "ses-M000", "diagnosis": "CN"}]
    )
    caps_tsv = _tsv(
        tmp_path / "caps.tsv", [{"cohort": "A", "path": "caps_a"}, {"cohort": "B", "path": "/data/caps_b"}]
    )
    tsv_tsv = _tsv(
        tmp_path / "tsv.tsv",
        [
            {"cohort": "A", "path": "a/p.tsv", "diagnoses": "AD,CN,MCI"},
            {"cohort": "B", "path": "b/p.tsv", "diagnoses": "CN"},
        ],
    )
    frame, caps = load_multi_cohort(caps_tsv, tsv_tsv, "diagnosis", ["AD", "CN"])
    assert caps == {"A": tmp_path / "caps_a", "B": Path("/data/caps_b")}
    assert sorted(zip(frame.cohort, frame.participant_id, frame.session_id)) == [
        ("A", "sub-01", "ses-M000"),
        ("A", "sub-01", "ses-M012"),
        ("A", "sub-02", "ses-M000"),
        ("B", "sub-09", "ses-M000"),
    ]


def test_same_session_in_two_cohorts_is_an_error(tmp_path: Path) -> None:
    tsv = _tsv(tmp_path / "p.tsv", ROWS)
    with pytest.raises(InputError, match="more than one cohort"):
        combine_cohorts([("A", tmp_path, tsv), ("B", tmp_path, tsv)], "diagnosis")


def test_check_images_exist_reports_all_missing(fresh_caps: GeneratedDataset) -> None:
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis")
    check_images_exist(frame, fresh_caps.caps_dir)  # all present
    extra = pd.DataFrame(
        [{"participant_id": f"sub-9{i:02d}", "session_id": "ses-M000", "diagnosis": "AD"} for i in range(25)]
    )
    with pytest.raises(InputError) as err:
        check_images_exist(pd.concat([frame, extra]), {"single": fresh_caps.caps_dir})
    text = str(err.value)
    assert "25 image(s) not found" in text and "sub-900 ses-M000: missing" in text
    assert "and 5 more" in text
    assert "sub-900_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz" in text


def test_diagnoses_filter_reads_the_label_column_when_it_holds_them(tmp_path: Path) -> None:
    rows = [dict(r, dx2=d) for r, d in zip(ROWS, ["AD", "AD", "MCI", "CN"])]
    path = _tsv(tmp_path / "p.tsv", rows)
    # label dx2 holds AD and CN: the filter keeps the rows whose dx2 is AD or CN
    frame = load_participants(path, "dx2", ["AD", "CN"])
    assert sorted(zip(frame.participant_id, frame.dx2)) == [
        ("sub-01", "AD"),
        ("sub-01", "AD"),
        ("sub-03", "CN"),
    ]
    # a label without those values (regression on age): the filter reads `diagnosis`, as ClinicaDL does
    frame = load_participants(path, "age", ["AD", "CN"])
    assert sorted(frame.participant_id) == ["sub-01", "sub-01", "sub-02"]

"""`neuroexec train TASK CAPS.tsv PREPROCESSING TSV.tsv MAPS --multi_cohort`: ClinicaDL's two cohort tables
become the spec's cohorts and one split directory of the rows ClinicaDL 1.6.1 trains on (each cohort's
split-<i>/ TSVs, the rows of the diagnoses both the cohort's and asked for, tagged with the cohort, in the
table's order); the training uses both CAPS, and bad tables are refused naming the file and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.cli import main
from neuroexec.compat.train_spec import TrainOptions, train_spec_dict
from neuroexec.errors import InputError


def _doc(root: Path, maps: Path, **options) -> dict:
    options = {"multi_cohort": True, "gpu": False, **options}
    opts = TrainOptions("classification", root / "caps.tsv", "t1-linear", root / "tsv.tsv", maps, options)
    return train_spec_dict(opts)


def _expected_rows(root: Path, split: int, name: str) -> pd.DataFrame:
    """What ClinicaDL's SplitManager gives for split `split`: adni's rows, then aibl's AD rows."""
    parts = []
    for cohort, kept in (("adni", ("AD", "CN")), ("aibl", ("AD",))):
        frame = pd.read_csv(root / f"split_{cohort}/2_fold/split-{split}/{name}", sep="\t", dtype=str)
        parts.append(frame[frame["diagnosis"].isin(kept)].assign(cohort=cohort))
    return pd.concat(parts, ignore_index=True)


def test_the_cohort_tables_become_cohorts_and_one_split_directory(cohort_tables, tmp_path):
    doc = _doc(cohort_tables, tmp_path / "maps")
    listed = doc["datasets"]["data"]["cohorts"]
    assert [(c["name"], c["caps"]) for c in listed] == [
        ("adni", str(cohort_tables / "caps_adni")),
        ("aibl", str(cohort_tables / "caps_aibl")),
    ]
    split = doc["models"]["classification"]["split"]
    assert (
        split["n_splits"] == 2
        and Path(split["directory"]) == tmp_path / "maps/.neuroexec/multi_cohort/splits"
    )
    for i in range(2):
        for name in ("train.tsv", "validation_baseline.tsv"):
            written = pd.read_csv(Path(split["directory"]) / f"split-{i}" / name, sep="\t", dtype=str)
            pd.testing.assert_frame_equal(written, _expected_rows(cohort_tables, i, name))
    aibl = pd.read_csv(listed[1]["participants"], sep="\t", dtype=str)  # its train.tsv, AD rows only
    assert set(aibl["diagnosis"]) == {"AD"} and len(aibl) == 4 and set(aibl["cohort"]) == {"aibl"}
    before = Path(listed[0]["participants"]).stat().st_mtime_ns
    assert (
        _doc(cohort_tables, tmp_path / "maps") == doc
    )  # the same command: the same spec, files left as they were
    assert Path(listed[0]["participants"]).stat().st_mtime_ns == before


def test_a_cohort_sharing_no_diagnosis_is_left_out_as_clinicadl_does(cohort_tables, tmp_path):
    doc = _doc(cohort_tables, tmp_path / "maps", diagnoses=["CN"])
    assert [c["name"] for c in doc["datasets"]["data"]["cohorts"]] == ["adni"]
    train = pd.read_csv(tmp_path / "maps/.neuroexec/multi_cohort/splits/split-0/train.tsv", sep="\t")
    assert set(train["diagnosis"]) == {"CN"} and set(train["cohort"]) == {"adni"}


def test_a_multi_cohort_training_reads_both_caps(cohort_tables, tmp_path):
    maps = tmp_path / "maps"
    argv = ["train", "classification", str(cohort_tables / "caps.tsv"), "t1-linear", str(cohort_tables / "tsv.tsv"),
            str(maps), "--multi_cohort", "--no-gpu", "--epochs", "1", "--batch_size", "4", "-np", "0",
            "--architecture", "Conv4_FC3", "--split", "0", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    train = pd.read_csv(maps / "groups/train/split-0/data.tsv", sep="\t", dtype=str)
    expected = _expected_rows(cohort_tables, 0, "train.tsv")
    assert list(zip(train.participant_id, train.cohort)) == list(
        zip(expected.participant_id, expected.cohort)
    )
    info = json.loads((maps / "maps.json").read_text())
    assert info["multi_cohort"] is True and info["diagnoses"] == ["AD", "CN"]
    table = pd.read_csv(info["caps_directory"], sep="\t")  # ClinicaDL's CAPS table, as it writes it
    assert list(table["cohort"]) == ["adni", "aibl"]
    assert list(table["path"]) == [str(cohort_tables / "caps_adni"), str(cohort_tables / "caps_aibl")]
    prediction = pd.read_csv(maps / "split-0/best-loss/validation/validation_image_level_prediction.tsv",
                             sep="\t")  # fmt: skip
    assert len(prediction) == len(_expected_rows(cohort_tables, 0, "validation_baseline.tsv"))
    model = maps / "split-0/best-loss/model.pth.tar"
    before = model.stat().st_mtime_ns
    assert main(argv) == 0  # the same command again: nothing to do
    assert model.stat().st_mtime_ns == before
    assert info["tsv_path"] == str(maps / ".neuroexec/multi_cohort/tsv.tsv")  # its cohorts, as ClinicaDL's
    again = tmp_path / "again"  # maps.json's parameters train on the same rows
    assert main(["train", "from_json", str(maps / "maps.json"), str(again), "--split", "0", "--quiet"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(again / "groups/train/split-0/data.tsv", sep="\t", dtype=str), train
    )


@pytest.mark.parametrize(
    ("change", "options", "file", "said"),
    [
        (None, {"diagnoses": ["AD", "CN", "MCI"]}, "tsv.tsv", "not every diagnosis asked for (AD, CN, MCI)"),
        (
            ("caps.tsv", "cohort\tpath\nadni\tcaps_adni\n"),
            {},
            "caps.tsv",
            "no CAPS listed for cohort(s) aibl of ",
        ),
        (("tsv.tsv", "cohort\tpath\nadni\tsplit_adni\n"), {}, "tsv.tsv", "missing diagnoses"),
        (
            ("split_aibl/2_fold/split-1/train.tsv", None),
            {},
            "split_aibl/2_fold/split-1",
            "cohort aibl: missing train.tsv",
        ),
    ],
    ids=["diagnoses not found", "no CAPS for a cohort", "no diagnoses column", "a split missing"],
)
def test_bad_cohort_tables_are_refused_naming_the_file(cohort_tables, tmp_path, change, options, file, said):
    root = tmp_path / "copy"  # the tables and split directories copied, the CAPS linked
    root.mkdir()
    for name in ("caps.tsv", "tsv.tsv"):
        (root / name).write_text((cohort_tables / name).read_text())
    for name in ("caps_adni", "caps_aibl"):
        (root / name).symlink_to(cohort_tables / name)
    for name in ("split_adni", "split_aibl"):
        _copy_tree(cohort_tables / name, root / name)
    if change is not None:
        path, text = change
        (root / path).unlink() if text is None else (root / path).write_text(text)
    with pytest.raises(InputError, match=re.escape(said)) as err:
        _doc(root, tmp_path / "maps", **options)
    assert str(err.value.path).startswith(str(root / file)), err.value.path


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*.tsv"):
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())


def test_a_caps_folder_with_multi_cohort_and_a_cohort_tsv_without_it_are_refused(cohort_tables, tmp_path):
    with pytest.raises(InputError, match="CAPS_DIRECTORY is a TSV of cohorts"):
        opts = TrainOptions("classification", cohort_tables / "caps_adni", "t1-linear", cohort_tables / "tsv.tsv",
                            tmp_path / "m", {"multi_cohort": True, "gpu": False})  # fmt: skip
        train_spec_dict(opts)
    with pytest.raises(InputError, match="a TSV of cohorts is read with --multi_cohort"):
        opts = TrainOptions("classification", cohort_tables / "caps_adni", "t1-linear", cohort_tables / "tsv.tsv",
                            tmp_path / "m", {"gpu": False})  # fmt: skip
        train_spec_dict(opts)

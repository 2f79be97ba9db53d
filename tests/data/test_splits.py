from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.data.splits import make_splits, read_split_directory
from neuroexec.errors import InputError


def _frame(n_ad: int = 13, n_cn: int = 9, sessions: int = 2) -> pd.DataFrame:
    rows = []
    for i in range(n_ad + n_cn):
        for s in range(sessions):
            dx = "AD" if i < n_ad else "CN"
            rows.append(
                {"participant_id": f"sub-{i:03d}", "session_id": f"ses-M{12 * s:03d}", "diagnosis": dx}
            )
    return pd.DataFrame(rows)


def _ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["participant_id"])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_partitions_participants(k: int) -> None:
    frame = _frame()
    folds = make_splits(frame, k, "diagnosis", seed=0)
    assert len(folds) == k
    seen = Counter()
    for train, valid in folds:
        assert not _ids(train) & _ids(valid)
        assert _ids(train) | _ids(valid) == _ids(frame)
        assert len(train) + len(valid) == len(frame)  # every session kept, on its participant's side
        seen.update(_ids(valid))
    assert set(seen.values()) == {1} and set(seen) == _ids(frame)


def test_kfold_is_stratified_within_one_participant() -> None:
    frame = _frame(13, 9)
    k = 4
    for _, valid in make_splits(frame, k, "diagnosis", seed=7):
        per_class = valid.groupby("diagnosis")["participant_id"].nunique()
        assert abs(per_class["AD"] - 13 / k) < 1 and abs(per_class["CN"] - 9 / k) < 1


def test_single_split_holds_out_a_fifth_per_class() -> None:
    frame = _frame(10, 15)
    [(train, valid)] = make_splits(frame, 1, "diagnosis", seed=0)
    counts = valid.groupby("diagnosis")["participant_id"].nunique()
    assert counts["AD"] == 2 and counts["CN"] == 3
    assert not _ids(train) & _ids(valid)


def test_splits_are_deterministic_and_seeded() -> None:
    frame = _frame()
    a = [(_ids(t), _ids(v)) for t, v in make_splits(frame, 3, "diagnosis", seed=1)]
    b = [(_ids(t), _ids(v)) for t, v in make_splits(frame, 3, "diagnosis", seed=1)]
    c = [(_ids(t), _ids(v)) for t, v in make_splits(frame, 3, "diagnosis", seed=2)]
    assert a == b and a != c


def test_stratum_is_label_of_first_session() -> None:
    frame = _frame(6, 6)
    # Participants converting AD later: only their first session decides their stratum.
    frame.loc[frame["session_id"] == "ses-M012", "diagnosis"] = "AD"
    for _, valid in make_splits(frame, 3, "diagnosis", seed=0):
        first = valid[valid.session_id == "ses-M000"]
        assert Counter(first["diagnosis"]) == {"AD": 2, "CN": 2}


def test_numeric_label_is_split_by_quantiles() -> None:
    frame = pd.DataFrame(
        {"participant_id": [f"sub-{i}" for i in range(20)], "session_id": "ses-M000", "age": range(20)}
    )
    for _, valid in make_splits(frame, 2, "age", seed=0):
        assert sorted(valid["age"] // 4) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_too_few_participants_per_class() -> None:
    with pytest.raises(InputError, match="each class needs at least 5:\n  diagnosis = CN: 3"):
        make_splits(_frame(10, 3), 5, "diagnosis", seed=0)
    with pytest.raises(InputError, match="at least 2"):
        make_splits(_frame(10, 1), 1, "diagnosis", seed=0)


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)


def test_reads_split_directory(tmp_path: Path) -> None:
    frame = _frame(4, 4)
    for i, (train, valid) in enumerate(make_splits(frame, 2, "diagnosis", seed=0)):
        d = tmp_path / f"split-{i}"
        _write(d / "train.tsv", train.drop(columns="diagnosis"))
        _write(d / "validation.tsv", valid.drop(columns="diagnosis"))
        _write(d / "validation_baseline.tsv", valid[valid.session_id == "ses-M000"].drop(columns="diagnosis"))
    _write(tmp_path / "labels.tsv", frame)
    folds = read_split_directory(tmp_path, 2, label="diagnosis")
    expected = make_splits(frame, 2, "diagnosis", seed=0)
    for (train, valid), (e_train, e_valid) in zip(folds, expected):
        assert _ids(train) == _ids(e_train) and _ids(valid) == _ids(e_valid)
        assert set(valid.session_id) == {"ses-M000"}  # validation_baseline by default
        assert train["diagnosis"].notna().all()  # labels joined from labels.tsv
    longitudinal = read_split_directory(tmp_path, 2, valid_longitudinal=True)
    assert set(longitudinal[0][1].session_id) == {"ses-M000", "ses-M012"}


def test_single_split_files_in_folder(tmp_path: Path) -> None:
    frame = _frame(3, 3, sessions=1)
    _write(tmp_path / "train.tsv", frame.iloc[:4])
    _write(tmp_path / "validation_baseline.tsv", frame.iloc[4:])
    [(train, valid)] = read_split_directory(tmp_path, 1)
    assert len(train) == 4 and len(valid) == 2


def test_split_directory_errors(tmp_path: Path) -> None:
    frame = _frame(3, 3, sessions=1)
    _write(tmp_path / "split-0" / "train.tsv", frame)
    with pytest.raises(InputError, match="missing validation_baseline.tsv") as err:
        read_split_directory(tmp_path, 1)
    assert "split-0" in str(err.value)
    _write(tmp_path / "split-0" / "validation_baseline.tsv", frame.iloc[:1])
    with pytest.raises(InputError, match="1 participant\\(s\\) in both"):
        read_split_directory(tmp_path, 1)
    with pytest.raises(InputError, match="lacks split-1/"):
        read_split_directory(tmp_path, 2)


def test_directory_with_only_longitudinal_files_uses_first_sessions(tmp_path: Path) -> None:
    # split-<i>/train.tsv + validation.tsv (no *_baseline.tsv): validation keeps each participant's
    # first session, as the baseline file would; validation.tsv is read whole with valid_longitudinal.
    frame = _frame(4, 4, sessions=3)
    folds = make_splits(frame, 2, "diagnosis", seed=0)
    for i, (train, valid) in enumerate(folds):
        _write(tmp_path / f"split-{i}" / "train.tsv", train)
        _write(tmp_path / f"split-{i}" / "validation.tsv", valid.iloc[::-1])  # not in session order
    for (train, valid), (e_train, e_valid) in zip(read_split_directory(tmp_path, 2), folds):
        assert len(train) == len(e_train) and _ids(valid) == _ids(e_valid)
        assert sorted(zip(valid.participant_id, valid.session_id)) == sorted(
            (p, "ses-M000") for p in _ids(e_valid)
        )
    [(_, longitudinal)] = read_split_directory(tmp_path / "split-1", 1, valid_longitudinal=True)
    assert len(longitudinal) == len(folds[1][1])
    [(train_first, _)] = read_split_directory(tmp_path / "split-0", 1, baseline=True)
    assert set(train_first.session_id) == {"ses-M000"} and _ids(train_first) == _ids(folds[0][0])

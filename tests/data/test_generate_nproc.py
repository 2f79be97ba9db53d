"""`generate.n_proc` / `neuroexec generate ... --n_proc N`: the images are written by N processes, and
the bytes written do not depend on N (each image draws from its own stream; tested on random, trivial,
artifacts with motion, shepplogan and atrophy), so the step's fingerprint leaves N out: another N plans nothing. A
neuroexec error in a worker reaches the command as raised."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.data import generate_artifacts, generate_kinds, generate_shepplogan, synthetic
from neuroexec.data.generate_pool import Writers, each
from neuroexec.errors import InputError, NeuroexecError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the workers are forked")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return synthetic.generate_atrophy_dataset(
        tmp_path_factory.mktemp("src") / "caps", subjects=4, resolution_mm=8.0
    ).caps_dir


@pytest.fixture
def writer_pids(monkeypatch, tmp_path) -> Path:
    """Each image write appends the writing process's id to a file (the workers inherit the spy)."""
    log = tmp_path / "pids.txt"
    for module, name in ((synthetic, "save_nifti"), (generate_kinds, "save_like"),
                         (generate_artifacts, "save_like"), (generate_shepplogan, "save_like")):  # fmt: skip
        original = getattr(module, name)

        def spy(*args, _original=original, **kwargs):
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            time.sleep(0.05)  # a write takes a moment, as a real-sized one does: every worker gets some
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return log


def _written(caps: Path) -> dict[str, bytes]:
    """Every file of a generated CAPS but its .neuroexec/ records (the spec there holds n_proc)."""
    return {
        p.relative_to(caps).as_posix(): p.read_bytes()
        for p in sorted(caps.rglob("*"))
        if p.is_file() and ".neuroexec" not in p.relative_to(caps).parts
    }


KINDS = {
    "random": ["--preprocessing", "t1-linear", "--n_subjects", "2"],
    "trivial": ["--preprocessing", "t1-linear", "--n_subjects", "2"],
    "artifacts": ["--preprocessing", "t1-linear", "--noise", "--contrast", "--motion"],
    "shepplogan": ["--n_subjects", "3", "--image_size", "16", "--smoothing"],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_two_processes_write_the_bytes_one_writes(kind, source, tmp_path, writer_pids, capsys):
    def generate(out: Path, n_proc: int) -> int:
        where = [] if kind == "shepplogan" else [str(source)]
        return main(["generate", kind, *where, str(out), *KINDS[kind], "--n_proc", str(n_proc), "--quiet"])

    assert generate(tmp_path / "one", 1) == 0
    assert set(writer_pids.read_text().split()) == {str(os.getpid())}
    writer_pids.unlink()
    assert generate(tmp_path / "two", 2) == 0
    workers = set(writer_pids.read_text().split()) - {str(os.getpid())}  # this process writes the masks
    assert 1 <= len(workers) <= 2  # a worker that starts late may find no image left: not a failure
    assert _written(tmp_path / "two") == _written(tmp_path / "one")
    capsys.readouterr()
    assert generate(tmp_path / "one", 2) == 0  # another n_proc: the same step, nothing to do
    assert "Nothing to do" in capsys.readouterr().out


def test_a_spec_atrophy_dataset_is_the_same_with_n_proc(tmp_path, writer_pids):
    from neuroexec.spec import load_spec

    found = {}
    for n_proc in (1, 3):
        spec = tmp_path / f"spec{n_proc}.toml"
        spec.write_text(
            f'version = 1\n[datasets.d]\ncaps = "caps{n_proc}"\n'
            f"generate = {{ subjects = 4, sessions = 2, resolution_mm = 8, n_proc = {n_proc} }}\n"
        )
        assert load_spec(spec).datasets["d"].generate.n_proc == n_proc
        assert main(["apply", str(spec), "--quiet"]) == 0
        found[n_proc] = _written(tmp_path / f"caps{n_proc}")
    workers = set(writer_pids.read_text().split()) - {str(os.getpid())}  # this process: the first apply
    assert 1 <= len(workers) <= 3
    assert found[1] == found[3] and len(found[1]) > 8


def _fails_on_one(i: int) -> None:
    if i == 1:
        raise InputError("/data/img.nii.gz", "not an image", "caps_directory")


def test_an_error_in_a_worker_is_raised_as_it_was():
    with pytest.raises(InputError) as info:
        each(Writers(n_proc=2), 3, _fails_on_one, "demo")
    assert (info.value.path, info.value.field) == ("/data/img.nii.gz", "caps_directory")
    assert str(info.value) == "/data/img.nii.gz [caps_directory]: not an image"


def _dies_on_one(i: int) -> None:
    if i == 1:
        os._exit(9)  # as the kernel's OOM killer ends a process: no exception, no clean-up


def test_a_worker_that_dies_is_one_sentence_naming_n_proc():
    with pytest.raises(NeuroexecError) as info:
        each(Writers(n_proc=2), 4, _dies_on_one, "demo images")
    message = str(info.value)
    assert "generate.n_proc = 2" in message and "out of memory" in message and "lower" in message
    assert "\n" not in message and "BrokenProcessPool" not in message and info.value.exit_code == 1

"""A bad argument of `neuroexec generate` is said with the argument the user typed and its value, not
with the key of the spec the command builds (`.neuroexec/generate-<kind>.toml`, which nobody wrote)."""

from __future__ import annotations

from pathlib import Path

from neuroexec.cli import main


def _err(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ".neuroexec" not in err and "datasets." not in err, err
    return err


def test_a_missing_caps_directory_is_named_as_the_argument(tmp_path: Path, capsys):
    missing = tmp_path / "nowhere"
    err = _err(
        ["generate", "random", str(missing), str(tmp_path / "out"), "--preprocessing", "t1-linear"], capsys
    )
    assert f"CAPS_DIRECTORY {missing.resolve()}: CAPS folder not found" in err
    assert "arguments of `neuroexec generate random`" in err


def test_a_bad_flag_is_named_as_the_flag_with_its_value(tmp_path: Path, capsys):
    err = _err(["generate", "shepplogan", str(tmp_path / "out"), "--n_subjects", "0"], capsys)
    assert "--n_subjects 0: expected a number >= 1" in err
    mask = tmp_path / "m.nii"
    err = _err(
        ["generate", "hypometabolic", str(tmp_path), str(tmp_path / "h"), "--mask_path", str(mask)], capsys
    )
    assert f"--mask_path {mask.resolve()}: " in err

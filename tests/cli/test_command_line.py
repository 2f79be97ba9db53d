"""The command line around the commands: help without torch, no-args help, global flags anywhere,
colour rules, plan's --detailed-exitcode and --json format, a `cuda` spec on a machine without a GPU,
each spec problem said once, shell completion."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neuroexec import cli
from neuroexec.cli import completion_command, main
from neuroexec.plan.graph import CHANGED, make_plan
from neuroexec.plan.render import change_word
from neuroexec.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
DATA_ONLY = """
version = 1
[compute]
workers = 0
{compute}
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 4, resolution_mm = 8, seed = {seed} }}
"""
TWO_MODELS = """
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
[models.cnn2]
maps = "maps/cnn2"
dataset = "demo"
architecture = "TinyCNN"
[groups.test]
dataset = "demo"
models = ["cnn", "cnn2"]
"""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def spec(tmp_path: Path, compute: str = "", seed: int = 1, models: bool = False) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(DATA_ONLY.format(compute=compute, seed=seed) + (TWO_MODELS if models else ""))
    return path


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_answer_without_importing_torch(flag):
    done = _python(
        "import sys\nfrom neuroexec.cli import main\ntry:\n    main([" + repr(flag) + "])\n"
        "except SystemExit as exit:\n    print('exit', exit.code)\nprint('torch' in sys.modules)"
    )
    assert done.stdout.splitlines()[-2:] == ["exit 0", "False"], done.stderr
    assert ("validate" in done.stdout and "completion" in done.stdout) if flag == "--help" else "neuroexec 0"


def test_no_arguments_prints_the_help_on_stdout_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: neuroexec") and all(name in out for name, _ in cli.COMMANDS)


def test_the_help_table_is_the_real_parsers_commands_and_help_lines():
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    real = [(a.dest, a.help) for a in sub._choices_actions]
    assert list(cli.COMMANDS) == real, "update COMMANDS in neuroexec/cli/__init__.py"


def test_global_flags_are_taken_before_or_after_the_command(tmp_path, capsys):
    path = spec(tmp_path)
    assert main(["plan", str(path)]) == 0
    normal = capsys.readouterr().out
    assert "+ dataset.demo.generate" in normal and "fingerprint:" not in normal
    for argv in (["-q", "plan", str(path)], ["plan", str(path), "--quiet"]):
        assert main(argv) == 0
        assert capsys.readouterr().out.splitlines() == [normal.splitlines()[-1]]  # the summary alone
    for argv in (["-v", "plan", str(path)], ["plan", "--verbose", str(path)]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "fingerprint: none recorded (kind generate" in out and "needs: nothing" in out


def test_apply_quiet_says_only_the_final_line_and_verbose_says_why(tmp_path, capsys):
    path = spec(tmp_path)
    assert main(["apply", str(path), "-q"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out.splitlines() == ["Plan: 1 new, 0 changed, 0 up to date, 0 refused (1 step)."]
    assert lines[:2] == ["Applied 1 step.", "Results of spec.toml:"]
    assert not [line for line in lines if "dataset.demo.generate" in line]  # no step line
    path.write_text(path.read_text().replace("seed = 1", "seed = 2"))
    assert main(["apply", str(path), "--quiet"]) == 0  # apply's own --quiet: no bars, the lines stay
    assert "[1/1] ~ dataset.demo.generate" in capsys.readouterr().err
    path.write_text(path.read_text().replace("seed = 2", "seed = 3"))
    assert main(["-v", "apply", str(path), "--target", "dataset.demo.generate"]) == 0
    err = capsys.readouterr().err
    assert "[1/1] ~ dataset.demo.generate\n      because seed: 2 -> 3" in err


def test_no_color_no_color_flag_and_dumb_terminal_turn_colour_off(tmp_path, capsys, monkeypatch):
    path = spec(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for argv, env, coloured in (
        (["plan", str(path)], {}, True),
        (["--no-color", "plan", str(path)], {}, False),
        (["plan", str(path)], {"NO_COLOR": "1"}, False),
        (["plan", str(path)], {"TERM": "dumb"}, False),
    ):
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            out = Terminal()
            m.setattr(sys, "stdout", out)
            assert main(argv) == 0
        assert ("\x1b[32m  + dataset.demo.generate" in out.getvalue()) == coloured, (argv, env)
        assert "+ dataset.demo.generate" in out.getvalue()
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["--no-color", "validate", str(tmp_path / "none.toml")]) == 2
    assert err.getvalue().startswith("error: ") and "\x1b[" not in err.getvalue()


def test_plan_detailed_exitcode_is_terraforms(tmp_path, capsys):
    path = spec(tmp_path)
    assert main(["plan", str(path), "--detailed-exitcode"]) == 2  # changes to apply
    assert main(["apply", str(path), "--quiet"]) == 0
    assert main(["plan", str(path), "--detailed-exitcode"]) == 0  # nothing to do
    assert main(["plan", str(path)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[datasets.demo]\ncaps = 3\n")
    assert main(["plan", str(bad)]) == 2  # a bad spec, as every command says it
    assert main(["plan", str(bad), "--detailed-exitcode"]) == 1  # an error: 2 would mean changes
    assert main(["plan", "--detailed-exitcode"]) == 1  # a usage error (no SPEC) too
    capsys.readouterr()


def test_plan_json_has_a_format_version_and_change_words(tmp_path, capsys):
    path = spec(tmp_path)
    assert main(["plan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format_version"] == "1.0" and data["notes"] == []
    assert [(s["action"], s["change"]) for s in data["steps"]] == [("+", "create")]
    assert {"spec", "steps", "summary"} <= set(data) and data["summary"]["new"] == 1  # kept keys
    assert main(["apply", str(path), "--quiet"]) == 0
    path.write_text(path.read_text().replace("seed = 1", "seed = 2"))
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 0
    step = json.loads(capsys.readouterr().out)["steps"][0]
    assert (step["action"], step["change"]) == ("~", "replace")  # the dataset generated before goes
    assert main(["apply", str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"][0]["change"] == "no-op"
    changed = make_plan(load_spec(path)).steps[0]
    changed.action = CHANGED  # a changed step that removes nothing first
    assert changed.removals == [] and change_word(changed) == "update"


def test_a_cuda_spec_validates_and_plans_without_a_gpu_and_apply_refuses_before_any_step(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = spec(tmp_path, compute='device = "cuda"\namp = true', models=True)
    note = "compute.device = 'cuda' but this machine has no CUDA GPU: validate and plan work here"
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.count(note) == 1  # once, not again for each model and group
    assert main(["plan", str(path), "--detailed-exitcode"]) == 2
    out = capsys.readouterr().out
    assert out.count(note) == 1 and "+ model.cnn.train[split-0]" in out
    assert main(["plan", str(path), "--json"]) == 0
    assert [n for n in json.loads(capsys.readouterr().out)["notes"] if note in n]
    assert main(["apply", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: apply refused: dataset.demo.extract[image], model.cnn.train[split-0]" in err
    assert "this machine has no CUDA GPU; run apply where there is one" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "maps").exists()  # no step ran


def test_each_problem_of_a_spec_is_reported_once(tmp_path, capsys):
    path = spec(tmp_path, compute='device = "cpu"\namp = true\nkernels = "triton"', models=True)
    text = path.read_text().replace('dataset = "demo"\narchitecture = "TinyCNN"\n[models.cnn2]', (
        'dataset = "nowhere"\narchitecture = "TinyCNN"\n[models.cnn2]'
    ))  # fmt: skip
    path.write_text(text + '[datasets.real]\ncaps = "missing_caps"\nparticipants = "missing.tsv"\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    keys = [line.split(": ")[1] for line in problems]
    assert len(keys) == len(set(keys)), err
    for key in ("compute.amp", "compute.kernels", "models.cnn.dataset", "datasets.real.caps"):
        assert keys.count(key) == 1, (key, err)
    assert "models.cnn2.compute.amp" not in err and "groups.test.compute.amp" not in err
    assert err.startswith(f"error: {len(problems)} problems in the spec:")


@pytest.mark.parametrize("shell", completion_command.SHELLS)
def test_completion_scripts_cover_the_commands_and_their_flags(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("validate", "plan", "apply", "completion", "detailed-exitcode", "no-color"):
        assert word in script, word
    checker = {"bash": "bash", "zsh": "zsh"}.get(shell)
    if checker and shutil.which(checker):
        done = subprocess.run([checker, "-n"], input=script, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr

"""ClinicaDL's own train surface, read from ClinicaDL 1.6.1 itself: its train_config.toml template (only the
paths, epochs, architecture and computing resources adjusted to tiny data) trains with ClinicaDL and with
neuroexec into the same maps.json parameters, and every option of its click commands (name, negation,
choices, default) is one of neuroexec's `train`. Runs only where NEUROEXEC_CLINICADL names a clinicadl
executable (see test_with_clinicadl.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.compat.train_options import OPTIONS, defaults
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.compat.test_train_surface import parser_of
from tests.compat.test_with_clinicadl import DATA_ONLY, _clinicadl_split

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)
TASKS = ("classification", "regression", "reconstruction")

# Run by ClinicaDL's python: its train commands' options and its template's path, as JSON.
INTROSPECT = """
import json, clinicadl, pathlib
from clinicadl.train.tasks import classification_cli, regression_cli, reconstruction_cli
out = {"template": str(pathlib.Path(clinicadl.__file__).parent / "resources/config/train_config.toml")}
for task, module in (("classification", classification_cli), ("regression", regression_cli),
                     ("reconstruction", reconstruction_cli)):
    out[task] = [{"name": p.name, "opts": p.opts, "secondary": p.secondary_opts,
                  "choices": list(getattr(p.type, "choices", None) or []) or None}
                 for p in module.cli.params if p.param_type_name == "option"]
print(json.dumps(out))
"""


def clinicadl_python() -> str:
    return str(Path(CLINICADL).with_name("python"))


@pytest.fixture(scope="module")
def clinicadl_surface() -> dict:
    done = subprocess.run([clinicadl_python(), "-c", INTROSPECT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("task", TASKS)
def test_every_option_of_clinicadls_train_is_accepted_with_its_choices(clinicadl_surface, task):
    actions = {s: a for a in parser_of(task)._actions for s in a.option_strings}
    # ClinicaDL binds some short forms twice (-d to five options, -s to --sampler and --split): the last
    # one wins there; neuroexec gives -d to --diagnoses and -s to --split (README: ClinicaDL's train).
    clashes = {"-d", "-s"}
    options = [o for o in clinicadl_surface[task] if o["opts"]]  # (click-option-group's fake ones have none)
    assert len(options) > 40
    for option in options:
        for name in [*option["opts"], *option["secondary"]]:
            assert name in actions, (task, name)
        long = next(o for o in option["opts"] if o.startswith("--"))
        if option["choices"]:
            ours = actions[long].choices
            assert sorted(map(str, ours)) == sorted(map(str, option["choices"])), option["name"]
        shorts = [o for o in option["opts"] if not o.startswith("--") and o not in clashes]
        dest = {actions[s].dest for s in [long, *shorts]}
        assert len(dest) == 1, (option["name"], dest)


def test_the_table_defaults_are_the_template_values(clinicadl_surface):
    import tomllib

    template = tomllib.loads(Path(clinicadl_surface["template"]).read_text())
    for task in TASKS:
        expected = {k: v for s, t in template.items() if s.lower() not in TASKS or s.lower() == task
                    for k, v in t.items()}  # fmt: skip
        assert defaults(task) == expected, task
    assert {k for t in template.values() for k in t} == set(OPTIONS)


def test_clinicadls_template_trains_the_same_parameters(tmp_path, clinicadl_surface):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(DATA_ONLY)
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))  # the synthetic CAPS
    prepare = [
        CLINICADL,
        "prepare-data",
        "image",
        "data/demo",
        "t1-linear",
        "-ej",
        "extract.json",
        "-np",
        "1",
    ]
    done = subprocess.run(prepare, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    split = _clinicadl_split(tmp_path / "data/demo/participants.tsv", tmp_path / "split")
    text = Path(clinicadl_surface["template"]).read_text()
    for old, new in (('architecture = "default"', 'architecture = "Conv4_FC3"'), ("epochs = 20", "epochs = 1"),
                     ("gpu = true", "gpu = false"), ("n_proc = 2", "n_proc = 0"), ("batch_size = 8", "batch_size = 4"),
                     ("split = []", "split = [0]"), ("deterministic = false", "deterministic = true")):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "config.toml").write_text(text)
    args = ["train", "classification", "data/demo", "extract.json", str(split)]
    for cmd in ([CLINICADL, *args, "maps_cdl", "-c", "config.toml"],
                [sys.executable, "-m", "neuroexec", *args, "maps_nx", "-c", "config.toml", "--quiet"]):  # fmt: skip
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs, ours = (json.loads((tmp_path / m / "maps.json").read_text()) for m in ("maps_cdl", "maps_nx"))
    for params in (theirs, ours):  # the extraction each tool read (its record's name, prepare_dl of images)
        for key in ("extract_json", "prepare_dl"):
            params["preprocessing_dict"].pop(key)
    differ = {
        k: (theirs[k], ours.get(k, "<missing>")) for k in theirs if theirs[k] != ours.get(k, "<missing>")
    }
    assert differ == {
        "caps_directory": ("data/demo", str(tmp_path / "data/demo")),  # as given; neuroexec's is absolute
        # a split directory is recorded as the k-fold of its split-<i> folders (ClinicaDL: n_splits 0 is
        # one split read from the folder itself), which ClinicaDL reads back the same
        "n_splits": (0, 1),
        "validation": ("SingleSplit", "KFoldSplit"),
        "split": ([], [0]),  # ClinicaDL writes its template's [] whatever it trains; neuroexec the splits
        "transfer_path": (False, ""),  # no transfer: both read back as none
    }, differ

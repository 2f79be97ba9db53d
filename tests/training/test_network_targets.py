"""`--target 'model.M.train[split-i,network-k]'`: one network of a multi-network split, trained (or
resumed) and staged without publishing; in any order, in two processes at once; the split's apply then
trains what is left and publishes the same models, bit for bit, as one sequential apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from neuroexec.cli import main
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import UP_TO_DATE, make_plan
from neuroexec.plan.state import read_state
from neuroexec.records import state_file
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV, INTERRUPT_NETWORK_ENV, mark_network_done
from tests.training.test_multi_network import PATCHES, assert_same, body, published, read_tsv
from tests.training.training_specs import run_apply, write_spec

SPLIT = "model.{}.train[split-0]"


def network(model: str, k: int | str) -> str:
    return f"model.{model}.train[split-0,network-{k}]"


def reasons(path, model: str, target: str | None = None) -> list[str]:
    plan = make_plan(load_spec(path))
    steps = plan.select(target) if target else plan.steps
    return next(p for p in steps if p.step.id == SPLIT.format(model)).reasons


def recorded(path, model: str) -> bool:
    data, _ = read_state(state_file(path.parent / "maps" / model))
    return SPLIT.format(model) in (data or {}).get("steps", {})


def side_by_side(path, model: str, networks: tuple[int, ...]) -> list[subprocess.Popen]:
    """`neuroexec apply --target` of each network, all started at once (real processes)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # as this process computes
    env.pop(INTERRUPT_ENV, None)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "neuroexec", "apply", str(path), "--target", network(model, k)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in networks
    ]


def overlapped(path, b: MapsLayout) -> None:
    """network-1 and network-3 in two processes at once: network-1's process is held (SIGSTOP) inside
    its training, after its first epoch, while network-3's runs from start to end; then it goes on."""
    (first,) = side_by_side(path, "b", (1,))
    try:
        while not b.resume_state(0, 1).is_file() and first.poll() is None:
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None and not b.staged_network_done(0, 1).exists()  # in its training
        (second,) = side_by_side(path, "b", (3,))
        out, err = second.communicate(timeout=600)
        assert second.returncode == 0, out + err  # not refused (a lock held) nor failed
        assert b.staged_network_done(0, 3).is_file() and not b.staged_network_done(0, 1).exists()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err


def as_an_earlier_version_left_it(maps: MapsLayout, k: int) -> None:
    """Network k's interrupted run as an earlier version kept it: its three files in tmp/ itself, the
    resume state naming the network (sizes by path in tmp/)."""
    state = torch.load(maps.resume_state(0, k), weights_only=True)
    for new, old in (
        (maps.checkpoint(0, k), maps.checkpoint(0)),
        (maps.optimizer_checkpoint(0, k), maps.optimizer_checkpoint(0)),
    ):
        new.rename(old)
    tmp = maps.tmp_dir(0)
    state["sizes"] = {name.removeprefix(f"network-{k}/"): size for name, size in state["sizes"].items()}
    assert state["network"] == k and str(maps.checkpoint(0).relative_to(tmp)) in state["sizes"]
    torch.save(state, maps.resume_state(0))
    maps.resume_state(0, k).unlink()


def test_networks_in_any_order_or_side_by_side_then_the_split_give_one_sequential_apply(tmp_path):
    # a: one sequential apply; b: networks 2 then 0 (interrupted, resumed) here, then 1 and 3 in two
    # processes at once; the split's apply then only publishes
    path = write_spec(tmp_path, {"a": body(epochs=2), "b": body(epochs=2)})
    b = MapsLayout(tmp_path / "maps/b")
    run_apply(path, target=network("b", 2))
    assert b.staged_network_done(0, 2).is_file() and not b.staged_network_done(0, 0).exists()
    assert not b.maps_json.exists() and not recorded(path, "b")  # staged, not published nor recorded
    planned = [
        p for p in make_plan(load_spec(path)).select(network("b", 2)) if p.step.id == SPLIT.format("b")
    ]
    assert [p.action for p in planned] == [UP_TO_DATE]  # finished under the same key: nothing to do
    assert SPLIT.format("b") not in run_apply(path, target=network("b", 2)).ran
    with pytest.MonkeyPatch.context() as mp:  # network-0 interrupted after its first epoch
        mp.setenv(INTERRUPT_ENV, "0")
        mp.setenv(INTERRUPT_NETWORK_ENV, "0")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target=network("b", 0))
    assert reasons(path, "b") == [
        "interrupted in network-0 after epoch 1 of 2: apply resumes there (network-2 of 4 finished)"
    ]
    as_an_earlier_version_left_it(b, 0)
    assert reasons(path, "b") == [  # read where it lies, not moved by the plan
        "interrupted in network-0 after epoch 1 of 2: apply resumes there (network-2 of 4 finished)"
    ]
    assert b.resume_state(0).is_file() and not b.resume_state(0, 0).exists()
    run_apply(path, target=network("b", 0))  # resumed after its last epoch
    assert reasons(path, "b") == [
        f"network-0, network-2 of {PATCHES} finished: apply trains the others and publishes the split"
    ]
    assert reasons(path, "b", network("b", 1)) == [  # its own reason only: not the split's notes
        "trains network-1 only; the split is published by a later apply of model.b.train[split-0]"
    ]
    overlapped(path, b)
    assert reasons(path, "b") == [
        f"network-0, network-1, network-2, network-3 of {PATCHES} finished: apply publishes the split"
    ]
    run_apply(path)
    assert recorded(path, "b") and not b.tmp_dir(0).exists()
    log = b.information_log.read_text()
    assert (
        "network-0: training resumed after epoch 0" in log
        and f"split-0: the {PATCHES} networks are trained" in log
    )
    assert log.count("training started") == PATCHES  # every run's events kept, the two processes' too
    a = MapsLayout(tmp_path / "maps/a")
    assert_same(published(a), published(b))
    for group in ("train", "validation"):
        for level in ("patch", "image"):
            pd.testing.assert_frame_equal(
                read_tsv(a.prediction_tsv(0, "loss", group, level)),
                read_tsv(b.prediction_tsv(0, "loss", group, level)),
            )


def test_a_network_target_names_the_model_and_its_networks_when_there_is_no_such_network(tmp_path, capsys):
    path = write_spec(tmp_path, {"b": body(), "one": body(multi=False)})
    plan = make_plan(load_spec(path))
    with pytest.raises(
        InputError, match=f"models.b has {PATCHES} networks \\(network-0 to network-3\\)"
    ) as err:
        plan.select(network("b", 9))
    assert err.value.exit_code == 2
    with pytest.raises(InputError, match="models.one has one network \\(multi_network is not set\\)"):
        plan.select(network("one", 0))
    # a wildcard over the models narrows the multi-network ones and skips the model of one network
    assert {p.target for p in plan.select("model.*.train[split-0,network-1]") if p.part} == {network("b", 1)}
    with pytest.raises(InputError, match="models.one has one network"):
        plan.select("model.o*.train[split-0,network-*]")  # nothing it names has networks
    assert [p.step.lock_scope for p in plan.select(network("b", "*")) if p.step.kind == "train"] == [
        f"split-0/network-{k}" for k in range(PATCHES)
    ]
    assert main(["plan", str(path), "--target", network("b", 9)]) == 2  # one sentence, no traceback
    assert "models.b has 4 networks" in capsys.readouterr().err
    assert main(["plan", str(path), "--target", network("b", 1)]) == 0
    assert "trains network-1 only; the split is published by a later apply" in capsys.readouterr().out
    # the split selected whole needs none of its networks
    both = plan.select([network("b", 1), SPLIT.format("b")])
    assert [p.step.lock_scope for p in both if p.step.kind == "train"] == ["split-0"]


def test_networks_finished_with_other_settings_are_named_discarded_then_retrained(tmp_path):
    path = write_spec(tmp_path, {"b": body()})
    b = MapsLayout(tmp_path / "maps/b")
    run_apply(path, target=["dataset.*", "model.b.split"])  # the data: the plan knows the training's key
    for k in range(PATCHES):  # all finished under another key (other settings or data)
        mark_network_done(b, 0, k, "another key", {"epochs": 1})
    names = ", ".join(f"network-{k}" for k in range(PATCHES))
    assert reasons(path, "b") == [
        f"{names} finished with other settings or data: apply discards and retrains them"
    ]
    run_apply(path, target=network("b", 2))  # network-2 under the spec's key, the others still stale
    assert reasons(path, "b") == [
        f"network-2 of {PATCHES} finished: apply trains the others and publishes the split; network-0, "
        "network-1, network-3 finished with other settings or data: apply discards and retrains them"
    ]
    run_apply(path, target=SPLIT.format("b"))
    assert recorded(path, "b") and not b.tmp_dir(0).exists()
    log = b.information_log.read_text()
    assert all(f"split-0 network-{k}: training started" in log for k in range(PATCHES))
    assert log.count("training started") == PATCHES  # network-2 once (kept), the others retrained


def test_a_network_target_plans_its_own_reason_not_the_splits_notes(tmp_path):
    path = write_spec(tmp_path, {"b": body()})
    b = MapsLayout(tmp_path / "maps/b")
    run_apply(path, target=["dataset.*", "model.b.split"])
    b.training_tsv(0, 0).parent.mkdir(parents=True)
    b.training_tsv(0, 0).write_text("epoch\n")  # a finished training the split's apply replaces
    (split,) = [p for p in make_plan(load_spec(path)).steps if p.step.id == SPLIT.format("b")]
    assert any(r.startswith("when it finishes, it replaces the finished training") for r in split.reasons)
    part = [p for p in make_plan(load_spec(path)).select(network("b", 1)) if p.part is not None]
    assert [p.reasons for p in part] == [
        ["trains network-1 only; the split is published by a later apply of model.b.train[split-0]"]
    ]


def test_a_plan_of_networks_names_each_and_counts_the_step_once(tmp_path, capsys):
    path = write_spec(tmp_path, {"b": body()})
    assert main(["plan", str(path), "--target", network("b", "*")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("  + model.b.train")] == [
        f"  + {network('b', k)}" for k in range(PATCHES)
    ]
    assert out[-1].endswith(f"(3 steps and {PATCHES} parts of 1 step).")
    assert main(["plan", str(path), "--target", network("b", 1), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    step = data["steps"][-1]
    assert (step["id"], step["part"], step["target"]) == (SPLIT.format("b"), "network-1", network("b", 1))
    assert data["steps"][0]["part"] is None and data["summary"]["parts"] == 1


def test_apply_of_a_network_target_prints_the_part_it_runs_and_what_is_left(tmp_path, capsys):
    """apply shows what `plan --target` shows: the network's part with its reason, not the split; it
    says the network is staged and which apply publishes the split; run again, the part is `=`."""
    path = write_spec(tmp_path, {"b": body()})
    assert main(["apply", str(path), "--target", network("b", 1)]) == 0
    out, err = capsys.readouterr()
    later = "the split is published by a later apply of model.b.train[split-0]"
    assert f"  + {network('b', 1)}\n      trains network-1 only; {later}\n" in out
    assert "(3 steps and 1 part of 1 step)" in out and f"  + {SPLIT.format('b')}\n" not in out
    assert (
        f"] + {network('b', 1)} (new)\n" in err and f"split-0: network-1 trained and staged; {later}" in err
    )
    assert main(["apply", str(path), "--target", network("b", 1)]) == 0
    out, err = capsys.readouterr()
    assert f"  = {network('b', 1)}\n      network-1 is trained: {later}\n" in out
    assert "Nothing to do: all 4 steps are up to date." in err and not recorded(path, "b")

"""information.log is shared by the splits of a MAPS: a finished training merges its events into it under
a kernel lock, so two split jobs finishing together keep both their lines."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from neuroexec import atomic
from neuroexec.maps.layout import MapsLayout
from neuroexec.training import outputs

HEADER = "neuroexec x\nTask: classification\n\n"


def _stage(maps: MapsLayout, split: int) -> None:
    log = maps.staged_information_log(split)
    log.parent.mkdir(parents=True)
    log.write_text(f"{HEADER}2026-01-01 00:00:0{split} split-{split}: training finished\n")


def test_publishing_merges_the_log_while_holding_the_maps_information_lock(tmp_path, monkeypatch):
    maps = MapsLayout(tmp_path / "maps")
    _stage(maps, 0)
    held: list[bool] = []
    real_exclusive, real_write = atomic.exclusive, atomic.write_text

    def spy_exclusive(path):
        assert path == maps.information_lock
        held.append(True)
        return real_exclusive(path)

    def spy_write(path, text):
        if path == maps.information_log:
            # the merge is written while no other process can hold the lock
            probe = textwrap.dedent(f"""
                import fcntl, sys
                with open({str(maps.information_lock)!r}, "a") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        sys.exit(7)
            """)
            assert subprocess.run([sys.executable, "-c", probe]).returncode == 7
        real_write(path, text)

    monkeypatch.setattr(atomic, "exclusive", spy_exclusive)
    monkeypatch.setattr(atomic, "write_text", spy_write)
    outputs.publish_training(maps, 0, [], tensorboard=False)
    assert held == [True]
    assert maps.information_log.read_text().endswith("split-0: training finished\n")


def test_two_splits_published_one_after_the_other_keep_both_lines(tmp_path):
    maps = MapsLayout(tmp_path / "maps")
    for split in (0, 1):
        _stage(maps, split)
    for split in (0, 1):
        outputs.publish_training(maps, split, [], tensorboard=False)
    text = maps.information_log.read_text()
    assert text.startswith(HEADER)
    assert "split-0: training finished" in text and "split-1: training finished" in text

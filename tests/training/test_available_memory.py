"""Available memory, which decides whether compute.cache keeps the images in memory, comes from psutil."""

from __future__ import annotations

from types import SimpleNamespace

from neuroexec.training import setup


def test_available_memory_is_what_psutil_reports(monkeypatch):
    monkeypatch.setattr(
        setup.psutil, "virtual_memory", lambda: SimpleNamespace(available=123_456_789, total=1 << 40)
    )
    assert setup.available_memory() == 123_456_789


def test_available_memory_is_unknown_when_the_platform_does_not_say(monkeypatch):
    def refuse():
        raise OSError("no memory information here")

    monkeypatch.setattr(setup.psutil, "virtual_memory", refuse)
    assert setup.available_memory() is None


def test_available_memory_of_this_machine_is_a_positive_byte_count():
    available = setup.available_memory()
    assert isinstance(available, int) and 0 < available <= setup.psutil.virtual_memory().total

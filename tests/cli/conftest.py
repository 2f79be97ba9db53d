"""The CLI tests use the tiny CAPS / MAPS fixtures of tests/compat, and its check that every spec a
command writes reads back as the document it built."""

from __future__ import annotations

from tests.compat.conftest import clinicadl_maps, legacy_model, specs_round_trip, tiny_data  # noqa: F401

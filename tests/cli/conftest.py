"""The CLI tests use the tiny CAPS / MAPS fixtures of tests/compat."""

from __future__ import annotations

from tests.compat.conftest import clinicadl_maps, legacy_model, tiny_data  # noqa: F401

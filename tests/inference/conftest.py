"""Fixtures of the inference tests (the helpers live in inference_bench.py)."""

from __future__ import annotations

from inference_bench import bench, cohort_a, cohort_b  # noqa: F401  (fixtures)

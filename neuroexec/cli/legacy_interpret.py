"""The older `interpret group|individual MODEL_PATH NAME` command (ClinicaDL's older page)."""

from __future__ import annotations


def wants(argv: list[str]) -> bool:
    return False


def main(argv: list[str]) -> int:
    return 2

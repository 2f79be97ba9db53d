"""ClinicaDL-style commands (train, predict, interpret, save-tensor): thin front ends building a spec."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Registered by the compatibility work (issue: ClinicaDL-style commands)."""

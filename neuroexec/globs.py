"""`--target` globs, shared by the plan (step ids) and the step kinds' parts (`network-*`)."""

from __future__ import annotations

import re


def target_pattern(glob: str) -> re.Pattern[str]:
    """`*` and `?` are wildcards; brackets are literal, since step ids contain them (`train[split-1]`).

    >>> bool(target_pattern("model.*.train[split-1]").fullmatch("model.cnn.train[split-1]"))
    True
    """
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob))

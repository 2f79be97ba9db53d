"""One exception hierarchy. Each error says where (file, key path or subject), what was expected and
what was found. The CLI renders them once, without a traceback, and exits with `exit_code`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class NeuroexecError(Exception):
    """Base of every error neuroexec raises on purpose (user-facing, no traceback)."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One problem in a spec: the file, the dotted key path and a sentence saying what was expected."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class SpecError(NeuroexecError):
    """The spec is invalid; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the spec:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class InputError(NeuroexecError):
    """Bad input data: a participants TSV, a NIfTI, a tensor, a checkpoint. Names the file."""

    exit_code = 2

    def __init__(self, path: str | Path | None, message: str, field: str | None = None):
        self.path = str(path) if path is not None else None
        self.field = field
        where = self.path or ""
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message)


class UnsafeCheckpointError(InputError):
    """A checkpoint that cannot be loaded with weights_only=True (it would run arbitrary code)."""


class PlanRefused(NeuroexecError):
    """The plan has refused steps (`!`): apply will not run until the spec is fixed."""

    exit_code = 2


class LockHeld(NeuroexecError):
    """Another live apply holds the lock of a MAPS or dataset folder."""

    exit_code = 3


class DeviceError(NeuroexecError):
    """A device was asked for that this machine does not have (cuda without a GPU, amp on CPU...)."""

    exit_code = 2


class StepFailed(NeuroexecError):
    """A step raised; earlier results and state are kept. Wraps the cause."""

    exit_code = 1

    def __init__(self, step_id: str, cause: BaseException):
        self.step_id = step_id
        self.cause = cause
        super().__init__(f"step {step_id} failed: {cause}")


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (library errors often add paragraphs of advice)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:limit]

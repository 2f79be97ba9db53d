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


class NoParts(InputError):
    """A `--target 'ID,PART]'` naming parts of a step that has none (a model of one network): skipped
    when the step glob has wildcards and another step has such parts."""


class UnsafeCheckpointError(InputError):
    """A checkpoint that cannot be loaded with weights_only=True (it would run arbitrary code)."""


class PlanRefused(NeuroexecError):
    """The plan has refused steps (`!`): apply will not run until the spec is fixed."""

    exit_code = 2


class LockHeld(NeuroexecError):
    """Another live apply holds the lock of a MAPS or dataset folder."""

    exit_code = 3


class PlanStale(NeuroexecError):
    """Between the plan and the locks, another apply wrote what the plan judged: apply runs nothing (its
    planned removals would hit the other apply's fresh results). Exit 3, like a lock held."""

    exit_code = 3


class LockUnsupported(NeuroexecError):
    """The file system of a folder refuses file locks (NFS without lockd, Lustre without -o flock)."""

    exit_code = 2

    def __init__(self, folder: str | Path, cause: OSError):
        super().__init__(
            f"{folder}: its file system refuses file locks ({cause.strerror}), and apply does not write a "
            "folder it cannot lock; enable locking on that mount (NFS: lockd/rpc.statd running; Lustre: "
            "mount -o flock) or put the folder on a file system with locks."
        )


class FolderNotWritable(NeuroexecError):
    """A folder apply must write is read-only (EROFS) or not ours to write (EACCES, EPERM)."""

    exit_code = 2

    def __init__(self, folder: str | Path, cause: OSError):
        import errno

        self.folder = str(folder)
        if cause.errno == errno.EROFS:
            why = "it is on a read-only file system"
            way_out = "mount it read-write or point the spec at a writable folder"
        else:
            why = "permission denied"
            way_out = "make it writable for you (chmod u+w) or point the spec at another folder"
        super().__init__(f"cannot write into {folder}: {why}; apply writes there, so {way_out}.")


class DiskFull(NeuroexecError):
    """A write ran out of room (ENOSPC, or EDQUOT: the disk quota); names the file being written, whose
    previous version is intact (atomic writes)."""

    exit_code = 1

    def __init__(self, path: str | Path, cause: OSError):
        import errno

        self.path = str(path)
        quota = " (disk quota exceeded)" if cause.errno == errno.EDQUOT else ""
        if Path(path).is_dir():  # a library wrote without saying which file
            where, kept, folder = f"into {path}", "", path
        else:
            where, kept, folder = str(path), "; its previous version, if any, is unchanged", Path(path).parent
        super().__init__(
            f"no space left on device{quota} while writing {where}{kept}: free some space on {folder} "
            "(df -h shows how much) and run the command again."
        )


class UnknownTarget(NeuroexecError):
    """`--target` matches no step of the plan; names the steps (by family) that exist."""

    exit_code = 2

    def __init__(self, target: str | list[str], step_ids: list[str]):
        import re

        families: dict[str, list[str]] = {}
        for step_id in step_ids:
            found = re.fullmatch(r"(.*?)\[(.*)\]", step_id)
            head, part = (found.group(1), found.group(2)) if found else (step_id, "")
            families.setdefault(head, []).append(part)
        shown = []
        for head, parts in families.items():
            parts = [p for p in parts if p]
            if not parts:
                shown.append(head)
            elif len(parts) <= 3:
                shown.extend(f"{head}[{p}]" for p in parts)
            else:
                shown.append(f"{head}[{parts[0]}] ... [{parts[-1]}] ({len(parts)} steps)")
        targets = [target] if isinstance(target, str) else list(target)
        wanted = ", ".join(repr(t) for t in targets)
        listing = ", ".join(shown) if shown else "none: the spec has no steps"
        super().__init__(
            f"--target {wanted} {'matches' if len(targets) == 1 else 'match'} no step; the steps are: {listing} "
            "(`*` matches anything, e.g. --target 'model.*.train*'; see `neuroexec plan`)."
        )


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

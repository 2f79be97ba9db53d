"""`neuroexec unlock FOLDER`: who holds the apply locks of a MAPS or CAPS folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_unlock(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unlock",
        help="show who holds the apply locks of a MAPS or CAPS folder and what is safe to do",
        description="Show each lock of FOLDER (the whole folder, each split) and its holder (pid, host, "
        "start). Locks vanish with their process, kill -9 included; a lock held for a host that crashed "
        "is freed by the file server (NFS) later. --force removes the held lock files, unless their "
        "holder runs on this host: only when you are sure nothing writes FOLDER.",
    )
    p.add_argument("folder", type=Path, metavar="FOLDER")
    p.add_argument("--force", action="store_true", help="remove lock files held from another host")
    p.set_defaults(func=cmd_unlock)


def cmd_unlock(args: argparse.Namespace) -> int:
    from neuroexec.lock import unlock

    print(unlock(args.folder, force=args.force))
    return 0

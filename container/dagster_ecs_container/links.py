"""The symlinks a DAG release moves, each re-pointed with one ``rename``.

The live DAG directory (``DAGSTER_DAGS_DIR``) links to an immutable version directory beside it,
``.<name>.versions/<version>`` (or to the image's own DAGs); in a task's sidecar the code location's
socket, ``live.sock``, links to the socket of the code server loaded from that directory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def read(link: Path) -> str | None:
    """Where ``link`` points, as written; None when there is no link."""
    try:
        return os.readlink(link)
    except OSError:
        return None


def point(link: Path, target: Path | str | None) -> None:
    """Atomically (re)point ``link`` at ``target``; None removes the link."""
    if target is None:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    swap = link.with_name(f".{link.name}.swap")
    with contextlib.suppress(FileNotFoundError):
        swap.unlink()
    os.symlink(target, swap)
    os.replace(swap, link)


def versions_dir(live: Path) -> Path:
    """The immutable version directories the live DAG link points into."""
    return live.parent / f".{live.name}.versions"


def live_version(live: Path) -> str | None:
    """The synced version ``live`` points at; None for the image's DAGs or no link."""
    target = read(live)
    if target is None:
        return None
    return Path(target).name if Path(target).parent == versions_dir(live) else None

"""This machine's processes, read from /proc: a process's command line, environment and children."""

from __future__ import annotations

from pathlib import Path


def pids() -> list[int]:
    """Every process's id."""
    return [int(proc.name) for proc in Path("/proc").iterdir() if proc.name.isdigit()]


def children(pid: int) -> list[int]:
    found = []
    for child in pids():
        try:
            ppid = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(child)
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children(found[-1]))
    return found


def cmdline(pid: int) -> str:
    """Its command line, words joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def environ(pid: int) -> list[bytes]:
    """Its environment's ``NAME=value`` entries ([] once it is gone, or when it is not ours to read)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []

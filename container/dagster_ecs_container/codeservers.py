"""Stop the code servers the webserver no longer uses after a reload.

Dagster 1.13's webserver starts a new ``dagster api grpc`` process when a code location is
reloaded and is meant to let the old one die when its heartbeats stop (45 s). Measured here,
the old processes stay: about 130 MB each, so a 512 MB Fargate task is killed for memory after
one or two DAG deploys. The sidecar therefore stops every code server of the webserver except
the newest, once the newest has served for ``grace`` seconds (longer than Dagster's own 45 s
heartbeat window, so nothing still in use is stopped).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger("dagster_ecs.codeservers")
TICKS = os.sysconf("SC_CLK_TCK")


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    started: float  # seconds since boot
    cmd: str
    sid: int = 0
    state: str = "R"
    rss_kb: int = 0


def processes(proc_root: Path = Path("/proc")) -> list[Proc]:
    """Every process on the machine (or in the container), read from ``/proc``."""
    found = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            rss_pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        found.append(
            Proc(
                pid=int(entry.name),
                ppid=int(fields[1]),
                started=int(fields[19]) / TICKS,
                cmd=cmd,
                sid=int(fields[3]),
                state=fields[0],
                rss_kb=rss_pages * PAGE_KB,
            )
        )
    return found


def _uptime(proc_root: Path = Path("/proc")) -> float:
    return float((proc_root / "uptime").read_text().split()[0])


def stale(procs: list[Proc], now: float, grace: float, parent_marker: str = "dagster-webserver") -> list[Proc]:
    """Code servers of a ``parent_marker`` process other than its newest, once the newest is ``grace`` s old."""
    parents = {p.pid for p in procs if parent_marker in p.cmd and "api grpc" not in p.cmd}
    doomed = []
    for parent in parents:
        servers = [p for p in procs if p.ppid == parent and "dagster api grpc" in p.cmd]
        servers.sort(key=lambda p: p.started)
        if len(servers) > 1 and now - servers[-1].started >= grace:
            doomed += servers[:-1]
    return doomed


def reap(grace: float = 60.0) -> int:
    """Stop the webserver's superseded code servers (this task's processes only). Returns how many."""
    session = os.getsid(0)
    mine = [p for p in processes() if p.sid == session]
    count = 0
    for proc in stale(mine, _uptime(), grace):
        try:
            os.kill(proc.pid, signal.SIGTERM)
            count += 1
            LOG.info("stopped superseded code server pid %d (the webserver reloaded its code location)", proc.pid)
        except OSError:
            pass
    return count

"""Memory headroom of this task: a release never takes the task past its memory limit.

A release starts the new version's code server while the old one still serves (no gap in the UI),
so for a few seconds the task holds two copies of the definitions' imports. With the example DAGs
that fits a 512 MB task (peak 471 MB); a DAG dependency layer such as pandas adds its imports to
both servers, and two of them may not fit. Before a release the sidecar compares

    the task's memory now + what the new server is expected to take

with the task's limit (``Limits.Memory`` of the task metadata endpoint v4, which Fargate sets in
``ECS_CONTAINER_METADATA_URI_V4``; the local runtime serves the same endpoint). The new server is
expected to take what the live one takes, plus the size on disk of what the new version's
dependency layer adds over the live one's (an overestimate: not every file of a layer is imported,
and shared libraries are counted whole). When that does not fit with ``MARGIN_MB`` to spare, the
release stops the old server first: a short window, the new server's start (a few seconds), in
which the UI shows the code location as reloading, logged with the figures; never an
out-of-memory kill. No limit known (no metadata endpoint): today's order, new server first.

The task's memory is the proportional set size (PSS) of every process of its session (the local
runtime starts each task as one; in the container supervisord's children keep its session): shared
pages (the interpreter, the same libraries in the webserver and the code servers) split between the
processes sharing them, which is close to what the task's memory cgroup is charged; summing resident
sets would count them once per process and find a 512 MB task short at every release. The new
server's share is taken as the live one's whole resident set: an overestimate, on the safe side.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import layers
from .codeservers import PAGE_KB, Server, processes

LOG = logging.getLogger("dagster_ecs.memory")
METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
MARGIN_MB = 16


def task_limit_mb(environ: dict[str, str] | None = None, timeout: float = 2.0) -> int | None:
    """The task's memory limit (MiB) from the task metadata endpoint v4; None when there is none."""
    uri = (os.environ if environ is None else environ).get(METADATA_ENV)
    if not uri:
        return None
    try:
        with urllib.request.urlopen(f"{uri}/task", timeout=timeout) as response:  # noqa: S310 - the agent's URI
            limits = json.loads(response.read()).get("Limits") or {}
        memory = int(limits.get("Memory") or 0)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        LOG.warning("the task's memory limit is unknown (%s/task: %s); releases start the new server first", uri, exc)
        return None
    return memory or None


def pss_kb(pid: int, rss_kb: int = 0) -> int:
    """A process's proportional set size (``/proc/<pid>/smaps_rollup``); ``rss_kb`` where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss_kb


def task_mb() -> float:
    """Memory of every process of this task (this process's session): the sum of their PSS."""
    session = os.getsid(0)
    return sum(pss_kb(p.pid, p.rss_kb) for p in processes() if p.sid == session and p.state != "Z") / 1024


def server_rss_mb(server: Server) -> float:
    try:
        pages = int(Path(f"/proc/{server.process.pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * PAGE_KB / 1024


def layer_mb(version_dir: Path | None) -> float:
    """Size on disk of the version's unpacked dependency layer (0 without one)."""
    layer = None if version_dir is None else layers.site(version_dir)
    if layer is None:
        return 0.0
    total = 0
    for root, _dirs, files in os.walk(layer):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total / (1024 * 1024)


@dataclass(frozen=True)
class Budget:
    """What a release decides from: the limit, the task now, the live server, the layers' difference."""

    limit_mb: float
    task_mb: float
    server_mb: float
    layer_delta_mb: float

    @property
    def needed_mb(self) -> float:
        return self.server_mb + max(self.layer_delta_mb, 0.0)

    @property
    def fits(self) -> bool:
        return self.task_mb + self.needed_mb + MARGIN_MB <= self.limit_mb

    def __str__(self) -> str:
        return (
            f"task {self.task_mb:.0f} MB + new code server ~{self.needed_mb:.0f} MB (live one {self.server_mb:.0f} MB"
            f", layer +{max(self.layer_delta_mb, 0.0):.0f} MB) + {MARGIN_MB} MB margin vs limit {self.limit_mb:.0f} MB"
        )


class Headroom:
    """``short(live_server, live_dir, new_dir)``: the Budget when two servers at once would not fit, else None."""

    def __init__(self, limit_mb: float | None):
        self.limit_mb = limit_mb

    @classmethod
    def of_this_task(cls) -> Headroom:
        return cls(task_limit_mb())

    def budget(self, server: Server, live_dir: Path | None, new_dir: Path) -> Budget | None:
        if self.limit_mb is None:
            return None
        return Budget(self.limit_mb, task_mb(), server_rss_mb(server), layer_mb(new_dir) - layer_mb(live_dir))

    def short(self, server: Server | None, live_dir: Path | None, new_dir: Path) -> Budget | None:
        if server is None or not server.running:
            return None
        budget = self.budget(server, live_dir, new_dir)
        return budget if budget is not None and not budget.fits else None

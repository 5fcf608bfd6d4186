"""One DAG release: a staged version goes live as a whole, or nothing changes.

    start its code server -> swap the DAG and socket links -> reload the webserver -> commit
            | refused                                          | refused or failed
      nothing moved                             roll back: both links exactly as they were,
                                                the previous code server live again

The version arrives staged at its final path (``.dags.versions/<version>``) and verified, every
file against the manifest's SHA-256, by ``sync.DagSync``, which records a refusal (``Refused``)
and retries it later. In a task's sidecar the release has the task's code servers: starting
one on the version's directory is the check (Dagster loads the definitions before the server
listens, so a version that does not load in this image never gets a socket). Once it listens the
live DAG link and ``live.sock`` are re-pointed together, the webserver reloads its code location
(the webserver's task; the daemon's reconnects through the socket and catches up at its next
workspace refresh) and the old server stops. Elsewhere (start-up, a run task) there is no code
server and nothing to reload: the release is the DAG link alone, after the sync loaded the
definitions in a separate interpreter.

When the task's memory would not hold two code servers at once (``memory.Headroom``: a heavy
dependency layer in a small task), the old server stops first and the new one starts after it: a
short window in which the location reloads, logged; if the new version then does not load, the
previous version's server starts again. Never an out-of-memory kill.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import links
from .codeservers import CodeServerError, CodeServers, Server
from .memory import Headroom

LOG = logging.getLogger("dagster_ecs.release")


class Refused(RuntimeError):
    """The version did not go live: both links are as they were, the previous code server serves."""

    @classmethod
    def not_loading(cls, version: str, error: Exception) -> Refused:
        return cls(f"version {version} refused, its definitions do not load: {error}")


@dataclass(frozen=True)
class Before:
    """The two links and the live server before a swap: what a rollback puts back."""

    dags: str | None  # the live DAG link's target, as written (None: there was no link)
    socket: str | None  # live.sock's target
    server: Server | None  # the code server live.sock named


class Release:
    """The live DAGs of one task: ``go_live`` releases a version; in the sidecar, ``start_live`` and
    ``tick`` keep a code server running for whatever is live."""

    def __init__(
        self,
        live: Path,
        servers: CodeServers | None = None,
        reload: Callable[[str], bool] | None = None,
        headroom: Headroom | None = None,
    ):
        self.live = live  # the live DAG link (DAGSTER_DAGS_DIR)
        self.servers = servers  # the sidecar's code servers; None: the DAG link alone
        self.reload = reload  # the webserver's reload (webserver task only): True when it loaded the version
        self.headroom = headroom  # the task's memory; None: never short (two servers at once always fit)
        # (version, budget) of the last release that stopped the old server first, short of memory; None: it did not
        self.stopped_first: tuple[str, str] | None = None
        self.lock = threading.RLock()  # the poll loop, POST /_dags/sync and the watchdog all get here

    def go_live(self, version: str, directory: Path) -> None:
        """Start -> swap -> reload -> commit; ``Refused`` (after the rollback) when the version is refused."""
        with self.lock:
            if self._short_of_memory(version, directory):
                return self._go_live_stopping_first(version, directory)
            server = self._start(version, directory)
            before = self._before()
            try:
                self._swap(directory, server)
                if not self._reload(version):
                    raise Refused(f"version {version} refused: the code location did not load it")
            except BaseException:
                self._roll_back(before, server)
                raise
            self._commit(version, before)

    def _short_of_memory(self, version: str, directory: Path) -> bool:
        if self.headroom is None or self.servers is None:
            return False
        live = self.live.resolve() if self.live.is_symlink() else None
        budget = self.headroom.short(self.servers.current, live, directory)
        self.stopped_first = None if budget is None else (version, str(budget))
        if budget is not None:
            LOG.warning(
                "DAG version %s: two code servers at once would not fit in the task's memory (%s): stopping the "
                "live server first; the code location reloads until the new one listens",
                version,
                budget,
            )
        return budget is not None

    def _go_live_stopping_first(self, version: str, directory: Path) -> None:
        """Stop the live server, then start -> swap -> reload -> commit; a refusal starts the previous again."""
        before = self._before()
        self.servers.stop(before.server)
        try:
            server = self._start(version, directory)
            try:
                self._swap(directory, server)
                if not self._reload(version):
                    raise Refused(f"version {version} refused: the code location did not load it")
            except BaseException:
                links.point(self.live, before.dags)
                self.servers.stop(server)
                raise
        except BaseException:
            if before.dags is not None and not self.start_live():
                LOG.error("the previous DAG version's code server did not start again; retrying at the next poll")
            raise
        self._commit(version, before)

    def _start(self, version: str, directory: Path) -> Server | None:
        """The check in the sidecar: the new version's code server, listening. Nothing moved yet."""
        if self.servers is None:
            return None
        try:
            return self.servers.start(directory, version)
        except Exception as exc:  # noqa: BLE001 - a server that does not listen refuses the version
            raise Refused.not_loading(version, exc) from exc

    def _before(self) -> Before:
        if self.servers is None:
            return Before(links.read(self.live), None, None)
        return Before(links.read(self.live), links.read(self.servers.link), self.servers.current)

    def _swap(self, directory: Path, server: Server | None) -> None:
        links.point(self.live, directory)
        if server is not None:
            self.servers.activate(server)

    def _reload(self, version: str) -> bool:
        if self.reload is None:
            return True
        try:
            return bool(self.reload(version))
        except Exception as exc:  # noqa: BLE001 - a failed reload refuses the version, the swap undone
            LOG.error("reloading the code location for DAG version %s failed: %s", version, exc)
            return False

    def _roll_back(self, before: Before, server: Server | None) -> None:
        """Both links as they were; the webserver back on the server it used; the new server stopped."""
        links.point(self.live, before.dags)
        if server is None:
            return
        self.servers.restore(before.server, before.socket)
        if before.server is not None:
            self._reload(before.server.version)
        self.servers.stop(server)

    def _commit(self, version: str, before: Before) -> None:
        if self.servers is None:
            return
        if self.reload is None:  # the daemon's task: nothing to reload, it reconnects through live.sock
            LOG.info("DAG version %s live; the daemon sees it from its next workspace refresh (<= 60 s)", version)
        self.servers.retire(before.server)

    def start_live(self) -> bool:
        """A code server for whatever is live now (start-up, or after the live one died)."""
        with self.lock:
            directory = self.live.resolve()
            try:
                server = self.servers.start(directory, directory.name)
            except CodeServerError as exc:
                LOG.error("the live DAGs (%s) do not load: %s; retrying at the next poll", directory, exc)
                return False
            self.servers.retire(self.servers.activate(server))
            if self.reload is not None:
                self.reload(directory.name)
            return True

    def tick(self) -> bool:
        """False when the live code server died."""
        with self.lock:
            return self.servers.tick()

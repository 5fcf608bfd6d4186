"""The task's Dagster code server, run by the sidecar: one per DAG version, swapped without a gap.

The webserver and the daemon both load the code location from a gRPC server on a Unix socket
(workspace.yaml: ``grpc_server`` on ``<socket dir>/live.sock``, a symlink). For a new DAG version
the sidecar starts a new ``dagster api grpc`` on the version's immutable directory. The server
loads the definitions before it listens, so a version that does not load in this image never gets
a socket: starting it *is* the check. Once it listens, the symlink is re-pointed with one
``rename``, the webserver reloads the location (a reconnect, under a second) and the old server
is stopped; the daemon's gRPC channel reconnects to ``live.sock`` (now the new server) and its
snapshot of the definitions catches up at its next workspace refresh (every 60 s). That sequence,
with the DAG link and its rollback, is ``release.Release``; this module runs the processes.

Compared with ``python_module`` locations, where the webserver and the daemon start code servers
themselves: one Dagster import per deploy instead of two (a check, then the reload's new server);
no code server started by the daemon every minute (Dagster's workspace refresh); none left behind
by the webserver after a reload (Dagster 1.13 keeps the old one, 130 MB per deploy, until the
task runs out of memory).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import layers, links
from .config import executable
from .settings import private_dir

LOG = logging.getLogger("dagster_ecs.codeservers")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
LIVE = "live.sock"


class CodeServerError(RuntimeError):
    """The definitions did not load (the server exited), or the server did not listen in time."""


@dataclass
class Server:
    version: str
    socket: Path
    process: subprocess.Popen
    output: deque = field(default_factory=lambda: deque(maxlen=60))

    @property
    def running(self) -> bool:
        return self.process.poll() is None


def _child_setup(niceness: int):
    # Not PR_SET_PDEATHSIG: it fires when the *thread* that started the child ends (a request of
    # POST /_dags/sync), not the sidecar. Servers of a sidecar that died are stopped by the next
    # one (CodeServers.stop_orphans).
    def setup() -> None:  # pragma: no cover - runs in the child between fork and exec
        if niceness:
            os.nice(niceness)

    return setup


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def failure(lines) -> str:
    """The line of a code server's output that says why it stopped (the exception), else its last line."""
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]:
            return line[-500:]
    return lines[-1][-500:] if lines else "no output"


class CodeServers:
    def __init__(
        self,
        socket_dir: Path,
        module: str = "definitions",
        location: str = "dags",
        startup_timeout: float = 180.0,
        niceness: int = 0,
    ):
        self.dir = socket_dir
        self.link = socket_dir / LIVE
        self.module, self.location = module, location
        self.startup_timeout = startup_timeout
        self.niceness = niceness
        self.current: Server | None = None
        self._count = 0

    def stop_orphans(self) -> int:
        """Stop the code servers a previous sidecar of this task left (supervisord restarted it)."""
        marker = f"--socket {self.dir}/"
        session, count = os.getsid(0), 0
        for proc in processes():
            if proc.sid == session and marker in proc.cmd and "api grpc" in proc.cmd and proc.state != "Z":
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGTERM)
                    count += 1
                    LOG.warning("stopped code server pid %d left by a previous sidecar", proc.pid)
        return count

    def start(self, directory: Path, version: str) -> Server:
        """A server for ``directory``, listening; CodeServerError when its definitions do not load.

        The version's dependency layer, if it has one, is on the server's ``PYTHONPATH`` (and so on that of
        the runs it launches): a layer that does not import refuses the version like any definitions error.
        """
        private_dir(self.dir)  # the short /tmp directory when the runtime dir is deep
        self._count += 1
        path = self.dir / f"{version[:16]}-{os.getpid()}-{self._count}.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        command = [executable("dagster"), "api", "grpc", "--socket", str(path), "-m", self.module]
        command += ["-d", str(directory), "--location-name", self.location]
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=layers.pythonpath(directory),
            preexec_fn=_child_setup(self.niceness),  # noqa: PLW1509 - a nice, nothing else
        )
        server = Server(version, path, process)
        threading.Thread(target=self._forward, args=(server,), name=f"codeserver-{version}", daemon=True).start()
        deadline = started + self.startup_timeout
        while not _accepts(path):
            if not server.running:
                process.wait()
                time.sleep(0.1)  # let the reader thread take the last lines
                raise CodeServerError(failure(server.output))
            if time.monotonic() > deadline:
                self.stop(server)
                raise CodeServerError(f"the code server did not listen within {self.startup_timeout:.0f}s")
            time.sleep(0.05)
        LOG.info("code server for DAG version %s listening (%.1fs)", version, time.monotonic() - started)
        return server

    @staticmethod
    def _forward(server: Server) -> None:
        """The server's output goes to the task's log and is kept for the error message."""
        for line in server.process.stdout:
            server.output.append(line)
            print(line, end="", flush=True)

    def activate(self, server: Server) -> Server | None:
        """Point ``live.sock`` at ``server`` (one rename); returns the server it replaces."""
        links.point(self.link, server.socket.name)
        previous, self.current = self.current, server
        return previous

    def restore(self, server: Server | None, target: str | None) -> None:
        """Undo an ``activate``: ``live.sock`` points at ``target`` again (None: no link), ``server`` is live."""
        links.point(self.link, target)
        self.current = server

    def retire(self, server: Server | None) -> None:
        """Stop ``server`` now, never the live one: the daemon has already let go of it."""
        if server is not None and server is not self.current:
            # in the background: a gRPC server takes a second or two to stop
            threading.Thread(target=self.stop, args=(server,), name=f"stop-{server.version}", daemon=True).start()

    def tick(self) -> bool:
        """False when the live server died."""
        return self.current is not None and self.current.running

    def stop(self, server: Server, timeout: float = 10.0) -> None:
        """SIGTERM the server (not its process group: a run it launched keeps running), then SIGKILL."""
        if server.running:
            server.process.terminate()
            try:
                server.process.wait(timeout)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        with contextlib.suppress(FileNotFoundError):
            server.socket.unlink()
        if server is not self.current:
            LOG.info("stopped the code server of DAG version %s", server.version)

    def stop_all(self) -> None:
        if self.current:
            self.stop(self.current)


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

"""A Docker engine for the image tests (tests/integration/test_image.py) and for building by hand.

On a machine with only the docker client (CI here), Debian's ``docker.io`` provides ``dockerd``.
This starts one that is safe on a shared machine: no bridge network, no iptables rules, its
data and exec roots and its API socket in a directory of its own (never a TCP listener), so it
neither touches nor is seen by another engine or test. Containers and builds then use the
``host`` or ``none`` network. What it starts it stops (by pid); an engine that already answers
is used as is and never stopped.

community.docker.docker_image_build builds with the docker CLI's buildx plugin, which
bookworm does not package; ``install-buildx`` extracts Debian's ``docker-buildx`` (from trixie,
it needs only libc6 >= 2.34) into ``/usr/local/lib/docker/cli-plugins`` with apt, without
changing the machine's apt sources.

    python tests/support/docker_engine.py start [--root DIR]   # prints the DOCKER_HOST to export
    python tests/support/docker_engine.py stop [--root DIR]
    python tests/support/docker_engine.py install-buildx [--dest DIR]
    python tests/support/docker_engine.py base [--name dagster-ecs-base:bookworm]   # debootstrap a base image
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "dagster-ecs-dockerd"
BUILDX_DIRS = [
    Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins",
    Path("/usr/local/lib/docker/cli-plugins"),
    Path("/usr/local/libexec/docker/cli-plugins"),
    Path("/usr/lib/docker/cli-plugins"),
    Path("/usr/libexec/docker/cli-plugins"),
]
BUILDX_DEST = Path("/usr/local/lib/docker/cli-plugins")
BUILDX_SUITE = "trixie"
BASE_NAME = "dagster-ecs-base:bookworm"
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def docker_answers(env: dict | None = None, timeout: float = 10) -> bool:
    """Whether ``docker info`` reaches an engine with this environment."""
    if not shutil.which("docker"):
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def buildx_answers(env: dict | None = None) -> bool:
    if not shutil.which("docker"):
        return False
    proc = subprocess.run(["docker", "buildx", "version"], env=env, capture_output=True, check=False)
    return proc.returncode == 0


def find_buildx() -> Path | None:
    for directory in BUILDX_DIRS:
        plugin = directory / "docker-buildx"
        if plugin.is_file() and os.access(plugin, os.X_OK):
            return plugin
    return None


class Engine:
    """A dockerd of our own (``start``), or the engine that already answers (``existing``)."""

    def __init__(self, docker_host: str | None, process: subprocess.Popen | None = None, root: Path | None = None):
        self.docker_host = docker_host
        self.process = process
        self.root = root

    @property
    def started(self) -> bool:
        return self.process is not None

    def env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    @classmethod
    def existing(cls) -> Engine | None:
        return cls(os.environ.get("DOCKER_HOST")) if docker_answers() else None

    @classmethod
    def start(cls, root: Path | None = None, timeout: float = 60) -> Engine:
        """Start ``dockerd`` with the safe flags in ``root`` (a new short temporary directory by default)."""
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise RuntimeError("dockerd is not installed (apt-get install -y docker.io)")
        if os.geteuid() != 0:
            raise RuntimeError("dockerd needs root")
        # Short: containerd's sockets live under the exec root and a Unix socket path has at most 107 bytes.
        root = Path(root) if root else Path(tempfile.mkdtemp(prefix="dckr-", dir="/tmp"))
        root.mkdir(parents=True, exist_ok=True)
        socket = root / "docker.sock"
        command = [
            dockerd,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'exec'}",
            f"--pidfile={root / 'dockerd.pid'}",
            f"--host=unix://{socket}",
        ]
        log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - kept open for the daemon's life
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        engine = cls(f"unix://{socket}", process, root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (root / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"dockerd exited with {process.returncode}:\n" + "\n".join(tail))
            if docker_answers(engine.env(), timeout=5):
                return engine
            time.sleep(0.2)
        engine.stop()
        raise RuntimeError(f"dockerd did not answer on {socket} within {timeout} s (log: {root / 'dockerd.log'})")

    def stop(self, timeout: float = 30) -> None:
        """Stop the dockerd this started (it stops its containerd); an existing engine is left alone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def install_buildx(dest: Path = BUILDX_DEST) -> Path:
    """Extract Debian's docker-buildx into ``dest`` (apt with a private sources list; the machine's is untouched)."""
    if found := find_buildx():
        return found
    with tempfile.TemporaryDirectory(prefix="buildx-apt-") as work:
        work = Path(work)
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        (work / "sources.list").write_text(f"deb http://deb.debian.org/debian {BUILDX_SUITE} main\n")
        options = [
            f"-oDir::Etc::SourceList={work / 'sources.list'}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={work / 'lists'}",
            f"-oDir::Cache={work / 'cache'}",
            "-oAPT::Sandbox::User=root",
        ]
        subprocess.run(["apt-get", "-qq", *options, "update"], check=True)
        subprocess.run(["apt-get", "-qq", *options, "download", "docker-buildx"], cwd=work, check=True)
        package = next(work.glob("docker-buildx_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(package), str(work / "x")], check=True)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / "docker-buildx"
        shutil.copy2(work / "x" / "usr/libexec/docker/cli-plugins/docker-buildx", target)
    return target


def make_base(name: str = BASE_NAME, env: dict | None = None) -> None:
    """A Debian bookworm image with python3 and venv (debootstrap), the Dockerfile's PYTHON_IMAGE offline."""
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="base-", dir="/tmp") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", rootfs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        root = Path(rootfs)
        # As Debian's own images: every bookworm suite, no package lists or caches, no resolv.conf of this machine.
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
        for junk in [*root.glob("var/cache/apt/*.bin"), *root.glob("var/cache/apt/archives/*.deb")]:
            junk.unlink()
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        (root / "etc/resolv.conf").write_text("")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", name], stdin=tar.stdout, env=env, check=True
        )
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap tree failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p = sub.add_parser("install-buildx")
    p.add_argument("--dest", type=Path, default=BUILDX_DEST)
    p = sub.add_parser("base")
    p.add_argument("--name", default=BASE_NAME)
    args = parser.parse_args(argv)
    if args.command == "start":
        engine = Engine.start(args.root)
        # Detach: the daemon outlives this command; "stop" finds it by its pid file.
        print(
            f"export DOCKER_HOST={engine.docker_host}  # dockerd pid {engine.process.pid}, log {args.root}/dockerd.log"
        )
    elif args.command == "stop":
        pid_file = args.root / "dockerd.pid"
        if not pid_file.exists():
            print(f"no dockerd recorded in {pid_file}")
            return 0
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():
            print(f"dockerd {pid} is not running")
            return 0
        if b"dockerd" not in cmdline.read_bytes():
            print(f"pid {pid} is not a dockerd: left alone")
            return 1
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        print(f"stopped dockerd {pid}")
    elif args.command == "install-buildx":
        print(install_buildx(args.dest))
    else:
        make_base(args.name)
        print(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

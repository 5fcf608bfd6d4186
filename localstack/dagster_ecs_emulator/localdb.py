"""The local runtime's PostgreSQL: a real server playing the emulated RDS instance's database.

It follows the instance the way RDS's own server does (``follow``, called every reconcile round):

* a new instance (created again after a teardown, or in an emulator that restarted empty: another
  ``DbiResourceId``) gets a new, empty database;
* a changed master password (ModifyDBInstance ``MasterUserPassword``, e.g. a rotation) changes the
  master role's password, so the old one is refused from then on;
* a deleted instance takes its database with it: the server stops and its files are removed.

Running as root, the server runs as the ``postgres`` user in a directory of its own under the temp dir
(``server_home``), which names the state dir it serves. A state dir that is gone (``make clean``, a test's
temporary directory) leaves nobody to stop or reuse that server: the next database initialised on the
machine stops it and removes its files (``collect_orphans``).

What the instance is comes from the emulator's RDS data plane (``rds_data``): the instance's id,
master user, database name and the SCRAM verifier of its master password, never the password.
The server listens on 127.0.0.1 with SCRAM authentication; its Unix socket, in a 0700 directory of
the server's user, trusts that user (the runtime changes the password through it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from .rds_data import RDS_PATH

LOG = logging.getLogger("dagster_ecs_emulator.runtime")
PG_BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
# What of the instance the server must match (kept in instance.json beside the data).
MATCHED = ("dbi_resource_id", "master_username", "password_verifier")
HOME_PREFIX = "dagster-ecs-postgres-"  # a server's own directory under the temp dir (running as root)
OWNER = "state-dir"  # in that directory: the state dir it serves


def server_home(state_dir: Path) -> Path:
    """The server's directory under the temp dir, for the runtime of ``state_dir`` (one per state dir)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"{HOME_PREFIX}{digest}"


def collect_orphans(uid: int, stop) -> list[Path]:
    """Stop and remove the servers' directories under the temp dir whose state dir is gone; return them.

    Only a real directory of the server's user ``uid``, mode 0700, that names its state dir is a
    candidate (a name someone else took in /tmp, or one from before the owner file, is left alone).
    ``stop(data)`` stops the server of a data directory that still has its postmaster.pid.
    """
    removed = []
    for home in sorted(Path(tempfile.gettempdir()).glob(f"{HOME_PREFIX}*")):
        try:
            info = os.lstat(home)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or stat.S_IMODE(info.st_mode) & 0o077:
                continue
            descriptor = os.open(home / OWNER, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(descriptor) as owner_file:
                owner = Path(owner_file.read().strip())
            if not owner.is_absolute() or owner.exists():  # (exists() raises only what it cannot decide)
                continue
        except (OSError, UnicodeDecodeError):
            continue
        if (home / "data" / "postmaster.pid").exists():
            stop(home / "data")
        shutil.rmtree(home, ignore_errors=True)
        LOG.info("removed the local PostgreSQL of %s, a state dir that is gone: %s", owner, home)
        removed.append(home)
    return removed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalDatabase:
    """A real PostgreSQL server standing in for the emulated RDS instance."""

    def __init__(self, config: dict, state_dir: Path, endpoint: str, region: str):
        self.config = config
        self.url = f"{endpoint.rstrip('/')}{RDS_PATH}{quote(config['identifier'])}?region={quote(region)}"
        self.state_dir = state_dir
        self.base = state_dir / "postgres"
        self.marker = self.base / "instance.json"
        self.port = int(config.get("port") or 0) or free_port()
        self.bindir = Path(config["bindir"]) if config.get("bindir") else (PG_BINDIRS[0] if PG_BINDIRS else None)
        self.user = None
        home = self.base
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as a system user ...
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            # ... in a directory that user can reach (the state dir may sit below a 0700 one).
            home = server_home(state_dir)
        self.home = home
        self.data = home / "data"
        self.socket_dir = home
        self.log = home / "postgres.log"
        self.applied: dict | None = None  # the instance as the running server last matched it

    # --- the emulated instance ---------------------------------------------------------
    def instance(self) -> dict | None:
        """The instance as the emulator's RDS knows it now, or None when it does not exist."""
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - the emulator, loopback
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    # --- the server ----------------------------------------------------------------------
    def _run(self, *args, check=True, **kwargs):
        kwargs.setdefault("capture_output", True)
        if self.user:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid)
        result = subprocess.run([str(self.bindir / args[0]), *args[1:]], check=False, **kwargs)
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout or b"").decode(errors="replace").strip()
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {output[-500:]}")
        return result

    def _chown(self, path: Path) -> None:
        """``chown -hR`` to the server's user: a symlink the server's user made is not followed (root runs this)."""
        if not self.user:
            return
        uid, gid = self.user.pw_uid, self.user.pw_gid
        os.chown(path, uid, gid, follow_symlinks=False)
        if path.is_symlink() or not path.is_dir():
            return
        for parent, dirs, files in os.walk(path, followlinks=False):  # a symlinked directory: not descended
            for name in dirs + files:
                os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)

    def _make_home(self) -> None:
        """The server's directory: 0700, its user's; in /tmp (running as root) an existing one must be that already,
        and it names the state dir it serves (collect_orphans)."""
        from dagster_ecs_container.settings import private_dir  # the tasks' own package, beside us in the venv

        uid, gid = (self.user.pw_uid, self.user.pw_gid) if self.user else (None, -1)
        private_dir(self.home, uid, gid)
        if self.home != self.base:
            descriptor = os.open(self.home / OWNER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "w") as owner_file:
                owner_file.write(str(self.state_dir.resolve()))

    def _stop_data(self, data: Path) -> None:
        self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", check=False)

    def _running(self) -> bool:
        return (self.data / "PG_VERSION").exists() and self._run(
            "pg_ctl", "-D", str(self.data), "status", check=False
        ).returncode == 0

    def _psql(self, database: str, username: str, sql: str) -> None:
        """Run SQL as the master user over the server's own Unix socket (trusted: only its user reaches it)."""
        self._run(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            username,
            "-d",
            database,
            "-c",
            sql,
        )

    def _init(self, instance: dict) -> None:
        if self.user:  # a new database on this machine: first the servers nobody will stop or reuse
            collect_orphans(self.user.pw_uid, self._stop_data)
        self._make_home()  # the socket directory
        self._chown(self.socket_dir)
        with tempfile.NamedTemporaryFile("w", dir=self.socket_dir, delete=False) as pwfile:
            pwfile.write(instance["password_verifier"])  # stored as is: a SCRAM verifier, not a password
        self._chown(Path(pwfile.name))
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                instance["master_username"],
                f"--pwfile={pwfile.name}",
                "-A",
                "scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        finally:
            os.unlink(pwfile.name)
        LOG.info(
            "initialised PostgreSQL for RDS instance %s (%s, user %s)",
            instance["identifier"],
            instance["dbi_resource_id"],
            instance["master_username"],
        )

    def _start(self, instance: dict) -> None:
        if self.user:
            self._make_home()
            os.close(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666))  # touch, not via a symlink
            self._chown(self.log)
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")
        created = self._run(
            "createdb",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            instance["master_username"],
            instance["db_name"],
            check=False,
        )
        if created.returncode != 0 and b"already exists" not in created.stderr:
            raise RuntimeError(
                f"createdb {instance['db_name']} failed: {created.stderr.decode(errors='replace').strip()}"
            )
        LOG.info("RDS instance %s served by PostgreSQL on 127.0.0.1:%d", instance["identifier"], self.port)

    def _remember(self, instance: dict) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        known = {key: instance[key] for key in MATCHED}
        self.marker.write_text(json.dumps(known))
        self.marker.chmod(0o600)
        self.applied = known

    def _remove(self, reason: str) -> None:
        if self.data.exists():
            LOG.info("RDS instance %s %s: removing its local PostgreSQL", self.config["identifier"], reason)
            self.stop()
            shutil.rmtree(self.data)
        if self.home != self.base:  # the server's own directory under /tmp (running as root): its socket, its log
            shutil.rmtree(self.home, ignore_errors=True)
        self.marker.unlink(missing_ok=True)
        self.applied = None

    def follow(self) -> dict | None:
        """Make the server match the instance; return the instance (None: there is none, nothing runs)."""
        if self.bindir is None or not (self.bindir / "postgres").exists():
            raise RuntimeError(
                "PostgreSQL server binaries not found (scripts/machine-packages rehearsal installs them)"
            )
        instance = self.instance()
        if instance is None:
            if self.data.exists() or self.applied:
                self._remove("no longer exists")
            return None
        wanted = {key: instance[key] for key in MATCHED}
        if self.applied == wanted:
            return instance
        known = self.applied or (json.loads(self.marker.read_text()) if self.marker.exists() else None)
        if self.data.exists() and (not known or known.get("dbi_resource_id") != instance["dbi_resource_id"]):
            # Another RDS instance than the one these files belong to: like a new instance on AWS,
            # it starts from an empty database.
            self._remove("is a new instance")
        self.base.mkdir(parents=True, exist_ok=True)
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._init(instance)
        if not self._running():
            self._start(instance)
        if not fresh and known and known.get("password_verifier") != instance["password_verifier"]:
            username = instance["master_username"]
            self._psql("postgres", username, f"ALTER ROLE \"{username}\" PASSWORD '{instance['password_verifier']}'")
            LOG.info("RDS instance %s: master password changed (ModifyDBInstance)", instance["identifier"])
        self._remember(instance)
        return instance

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._stop_data(self.data)

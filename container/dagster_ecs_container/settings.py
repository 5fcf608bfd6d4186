"""Everything the container reads from its environment, with the image's defaults.

The task definition sets the deployment-specific values (bucket, database, ports); the
defaults are the image's layout. The offline runtime overrides the paths and ports so that
several tasks can share one machine.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _names(value: str | None) -> tuple[str, ...]:
    """A comma-separated list (subnet ids, security group ids) as a tuple, without blanks."""
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())


def short_socket_dir(runtime_dir: Path) -> Path | None:
    """The short directory for a task's sockets when ``runtime_dir`` is too deep for them, else None."""
    if len(str(runtime_dir / "codeserver" / "0123456789abcdef-4194304-999.sock")) < 100:  # sun_path: 108 bytes
        return None
    digest = hashlib.sha256(str(runtime_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"dagster-ecs-{digest}"  # noqa: S108 - created 0700, one per task


def private_dir(path: Path, owner_uid: int | None = None, owner_gid: int = -1) -> Path:
    """``path`` as a directory of ``owner_uid`` (default: us) alone: created 0700, or checked when it exists.

    In a directory others can write to (/tmp) anyone may have taken the name first, so an existing
    entry is used only when it is a real directory (not a symlink) of the owner, with no group or
    other permissions. Elsewhere (the task's runtime directory, the state dir) it is ``mkdir -p``
    as before, and an existing directory is used as it is.
    """
    uid = os.geteuid() if owner_uid is None else owner_uid
    path.parent.mkdir(parents=True, exist_ok=True)
    parent = path.parent.stat()
    shared = parent.st_mode & stat.S_IWOTH or parent.st_uid not in (0, os.geteuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not shared:
            if not path.is_dir():
                raise
            return path
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            problems = ["is a symlink"]
        elif not stat.S_ISDIR(info.st_mode):
            problems = ["is not a directory"]
        else:
            problems = [f"is owned by uid {info.st_uid}, not {uid}"] if info.st_uid != uid else []
            if info.st_mode & 0o077:
                problems.append(f"has mode {stat.S_IMODE(info.st_mode):04o} (group/other may use it)")
        if problems:
            raise PermissionError(
                f"{path} {' and '.join(problems)}; it is in a shared directory, so someone else may have "
                f"made it: remove it (rm -rf {path}) and start again"
            ) from None
    else:
        if uid != os.geteuid():
            os.chown(path, uid, owner_gid, follow_symlinks=False)
    return path


@dataclass(frozen=True)
class Settings:
    home: Path
    dags_dir: Path
    builtin_dags_dir: Path
    runtime_dir: Path
    storage_dir: Path
    nginx_listen: str
    nginx_port: int
    webserver_port: int
    health_port: int
    bucket: str
    dags_prefix: str
    sync_enabled: bool
    sync_interval: float
    sync_timeout: float
    validate_dags: bool
    run_launcher: str
    max_concurrent_runs: int
    cluster: str
    run_subnets: tuple[str, ...] = ()
    run_security_groups: tuple[str, ...] = ()
    basic_auth_user: str = field(repr=False, default="")
    basic_auth_password: str = field(repr=False, default="")
    nginx_bin: str = "nginx"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = Path(env.get("DAGSTER_APP_DIR", "/opt/dagster"))
        return cls(
            home=Path(env.get("DAGSTER_HOME", base / "home")),
            dags_dir=Path(env.get("DAGSTER_DAGS_DIR", base / "dags")),
            builtin_dags_dir=Path(env.get("DAGSTER_BUILTIN_DAGS_DIR", base / "app" / "dags")),
            runtime_dir=Path(env.get("DAGSTER_RUNTIME_DIR", base / "run")),
            storage_dir=Path(env.get("DAGSTER_STORAGE_DIR", base / "storage")),
            nginx_listen=env.get("NGINX_LISTEN", "0.0.0.0"),  # noqa: S104 - the task's ENI; the ALB reaches it
            nginx_port=int(env.get("NGINX_PORT", "8080")),
            webserver_port=int(env.get("DAGSTER_WEBSERVER_PORT", "3000")),
            health_port=int(env.get("DAGSTER_HEALTH_PORT", "8081")),
            bucket=env.get("DAGSTER_DAGS_BUCKET", ""),
            dags_prefix=env.get("DAGSTER_DAGS_PREFIX", "dags/"),
            sync_enabled=_bool(env.get("DAGSTER_DAG_SYNC"), default=bool(env.get("DAGSTER_DAGS_BUCKET"))),
            sync_interval=float(env.get("DAGSTER_DAG_SYNC_INTERVAL", "10")),
            sync_timeout=float(env.get("DAGSTER_DAG_SYNC_TIMEOUT", "30")),
            validate_dags=_bool(env.get("DAGSTER_DAG_VALIDATE"), default=True),
            run_launcher=env.get("DAGSTER_RUN_LAUNCHER", "default"),
            max_concurrent_runs=int(env.get("DAGSTER_MAX_CONCURRENT_RUNS", "2")),
            cluster=env.get("DAGSTER_ECS_CLUSTER", ""),
            run_subnets=_names(env.get("DAGSTER_ECS_RUN_SUBNETS")),
            run_security_groups=_names(env.get("DAGSTER_ECS_RUN_SECURITY_GROUPS")),
            basic_auth_user=env.get("BASIC_AUTH_USER", ""),
            basic_auth_password=env.get("BASIC_AUTH_PASSWORD", ""),
            nginx_bin=env.get("NGINX_BIN", "nginx"),
        )

    @property
    def htpasswd(self) -> Path:
        return self.runtime_dir / "htpasswd"

    @property
    def status_file(self) -> Path:
        """The DAG sync's status (what is live, the last failure), as ``/health/details`` shows it."""
        return self.runtime_dir / "sync-status.json"

    @property
    def graphql_url(self) -> str:
        """The webserver's GraphQL API, on loopback (the sidecar's health check and reloads)."""
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    @property
    def codeserver_dir(self) -> Path:
        """The code servers' sockets: in the runtime directory, or a short path when that is too long."""
        return short_socket_dir(self.runtime_dir) or self.runtime_dir / "codeserver"

    @property
    def supervisor_socket(self) -> Path:
        """supervisord's control socket: in the runtime directory, or in the short socket directory.

        A deep runtime directory (a checkout at a long path, a test's tmp dir) would otherwise put the
        socket past sun_path's 108 bytes, and supervisord would refuse to start.
        """
        candidate = self.runtime_dir / "supervisor.sock"
        if len(str(candidate)) < 100:  # the same margin as codeserver_dir's
            return candidate
        return self.codeserver_dir / "supervisor.sock"  # the short /tmp directory: runtime_dir is too long

    @property
    def codeserver_socket(self) -> Path:
        """The live code server (a symlink the sidecar re-points); both workspaces load from it."""
        return self.codeserver_dir / "live.sock"

"""dagster-ecs-entrypoint: the container's start-up sequence, in Python.

    dagster-ecs-entrypoint webserver      nginx + dagster-webserver + sidecar under supervisord
    dagster-ecs-entrypoint daemon         dagster-daemon + sidecar under supervisord
    dagster-ecs-entrypoint healthcheck webserver|daemon   the ECS container health check
    dagster-ecs-entrypoint sidecar ROLE   (run by supervisord) the code server, the periodic DAG sync
                                          and /health
    dagster-ecs-entrypoint after-socket PATH CMD [ARGS...]   (run by supervisord) wait until the code
                                          server's Unix socket PATH accepts (at most 300 s), exec CMD
    dagster-ecs-entrypoint migrate        configure the instance, exec `dagster instance migrate` (the ecs
                                          stage's one-off task when the image's Dagster version changed)
    dagster-ecs-entrypoint CMD [ARGS...]  anything else (a run launched by EcsRunLauncher):
                                          configure the instance, sync the DAGs once, exec CMD

Start-up (the seed's sequence, each step one log line; a failed step says what to check):
1. basic auth from the Secrets Manager credentials (bcrypt htpasswd; webserver only)
2. Dagster storage: PostgreSQL accepts the task's credentials (dbcheck.py); if not, exit 1 with
   the server's error line, so that ECS (or the local runtime) reports why the task stopped
3. AWS credentials (STS GetCallerIdentity)
4. DAG bucket access (HeadBucket)
5. initial DAG sync, at most DAGSTER_DAG_SYNC_TIMEOUT (30 s); on failure the last synced
   version or the image's own DAGs (the local fallback, also used when sync is off)
6. periodic sync every DAGSTER_DAG_SYNC_INTERVAL seconds (the sidecar)
7. supervisord with the role's programs
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, replace
from functools import partial

from . import __version__, codeservers, inspect, layers, links, liveness
from .auth import AuthError, write_htpasswd
from .config import BASIC_AUTH_ENV, ROLES, executable, write_all
from .dbcheck import check_database
from .health import HealthCache, serve
from .memory import Headroom
from .release import Release
from .settings import Settings, private_dir
from .sync import DagSync, use_builtin
from .webserver import check_webserver, reload_webserver

LOG = logging.getLogger("dagster_ecs.entrypoint")


class StepFailed(RuntimeError):
    pass


def _aws(service: str):
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16
    )
    return boto3.client(service, config=config)


def _step(number: int, total: int, what: str, action, check: str):
    started = time.monotonic()
    try:
        detail = action()
    except Exception as exc:  # noqa: BLE001 - reported as a failed step with what to check
        LOG.error("step %d/%d %s: FAILED: %s -- check %s", number, total, what, exc, check)
        raise StepFailed(what) from exc
    LOG.info("step %d/%d %s: %s (%.1fs)", number, total, what, detail or "ok", time.monotonic() - started)
    return detail


def validate_definitions(directory) -> None:
    """The synced version's definitions must load (a fresh interpreter, so nothing stays imported), with
    the version's dependency layer, if any, on its ``PYTHONPATH``."""
    ok, result = inspect.run(sys.executable, directory, env=layers.pythonpath(directory))
    if not ok:
        raise RuntimeError(f"{result.get('file') or ''}: {result.get('error')}".lstrip(": "))


def make_sync(settings: Settings, release: Release | None = None, version: str | None = None) -> DagSync:
    """The DAG sync of a task. In the sidecar (``release``, with its code servers), a new version goes
    live only once a code server loaded it; elsewhere (start-up, a run task) it is checked in a
    separate interpreter first."""
    return DagSync(
        _aws("s3"),
        settings.bucket,
        settings.dags_prefix,
        settings.dags_dir,
        status_file=settings.status_file,
        validate=validate_definitions if release is None and settings.validate_dags else None,
        release=release,
        version=version,
    )


def initial_sync(settings: Settings, total: int, first: int, version: str | None = None) -> None:
    """Steps 2-4: credentials, bucket, first sync (bounded); fall back to local DAGs on any failure."""
    if not settings.sync_enabled:
        LOG.info(
            "steps %d-%d/%d: DAG sync disabled (DAGSTER_DAG_SYNC=false or no DAGSTER_DAGS_BUCKET): "
            "local fallback, the image's DAGs at %s",
            first,
            first + 2,
            total,
            settings.builtin_dags_dir,
        )
        use_builtin(settings.dags_dir, settings.builtin_dags_dir, settings.status_file)
        return
    sync = None
    try:
        _step(
            first,
            total,
            "AWS credentials",
            lambda: _aws("sts").get_caller_identity()["Arn"],
            "the task role (ECS task definition taskRoleArn) and AWS_REGION",
        )
        _step(
            first + 1,
            total,
            f"DAG bucket s3://{settings.bucket}",
            lambda: _aws("s3").head_bucket(Bucket=settings.bucket) and "reachable",
            "DAGSTER_DAGS_BUCKET and the task role's s3:ListBucket on it",
        )
        sync = make_sync(settings, version=version)
        done = threading.Event()

        def _run():
            sync.poll()
            done.set()

        threading.Thread(target=_run, name="initial-sync", daemon=True).start()

        def _wait():
            if not done.wait(settings.sync_timeout):
                raise TimeoutError(f"no answer within {settings.sync_timeout:.0f}s")
            if sync.status.last_error:
                raise RuntimeError(sync.status.last_error)
            return f"version {sync.status.version} ({sync.status.files} files)"

        _step(first + 2, total, "initial DAG sync", _wait, "that the dags stage published (--tags dags)")
    except StepFailed:
        fallback = sync.current_version() if sync else None
        LOG.warning(
            "starting with %s; the periodic sync keeps trying",
            f"the last synced DAG version {fallback}"
            if fallback
            else f"the image's DAGs ({settings.builtin_dags_dir})",
        )
        if not fallback:
            use_builtin(settings.dags_dir, settings.builtin_dags_dir, settings.status_file)


def start_service(role: str, settings: Settings) -> int:
    total = 7
    LOG.info("dagster-ecs-entrypoint %s starting the %s role", __version__, role)
    for directory in (settings.home, settings.runtime_dir, settings.storage_dir):
        directory.mkdir(parents=True, exist_ok=True)
    # supervisord creates its socket but not the directory (the short one when runtime_dir is deep).
    private_dir(settings.supervisor_socket.parent)  # in /tmp (a deep runtime dir): checked ours alone
    if role == "webserver":
        try:
            _step(
                1,
                total,
                "basic auth",
                lambda: f"htpasswd (bcrypt) for user {write_htpasswd(settings)}",
                "BASIC_AUTH_USER/BASIC_AUTH_PASSWORD (task definition secrets from Secrets Manager)",
            )
        except StepFailed:
            return 1  # never serve the UI without authentication
    else:
        LOG.info("step 1/%d basic auth: not needed by the %s", total, role)
    for name in BASIC_AUTH_ENV:  # written to the htpasswd (a hash): no child process gets them
        os.environ.pop(name, None)
    try:
        _step(
            2,
            total,
            "Dagster storage",
            check_database,
            "DAGSTER_POSTGRES_* (the task definition's database secret) against the RDS instance's master password",
        )
    except StepFailed:
        return 1  # nothing works without the storage: exit now, with the server's error, so ECS says why
    initial_sync(settings, total, first=3)
    write_all(settings, role)
    LOG.info(
        "step 6/%d periodic DAG sync: %s",
        total,
        f"every {settings.sync_interval:g}s by the sidecar" if settings.sync_enabled else "off",
    )
    supervisord = executable("supervisord")
    LOG.info("step 7/%d starting %s under supervisord", total, role)
    sys.stdout.flush()
    os.execvp(supervisord, [supervisord, "-c", str(settings.runtime_dir / "supervisord.conf")])
    return 0  # not reached


def sidecar(role: str, settings: Settings) -> int:
    """The per-task helper: the code server, the periodic DAG sync, and /health (webserver)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Nothing waits for the daemon task's new server, so it yields the CPU to the webserver's where
    # both share a machine. Old servers stop at once, also the daemon's: a few deploys in a row would
    # otherwise keep several alive (measured: 1.1 GB), and the daemon's gRPC channel reconnects to
    # live.sock, the new server, by itself (its workspace snapshot catches up at the 60 s refresh).
    servers = codeservers.CodeServers(settings.codeserver_dir, niceness=0 if role == "webserver" else 10)
    servers.stop_orphans()
    # The webserver reloads its code location at each release; the daemon reconnects through live.sock.
    reload = partial(reload_webserver, settings.graphql_url) if role == "webserver" else None
    # Two code servers at once during a release only when the task's memory holds them (memory.py).
    headroom = Headroom.of_this_task()
    release = Release(settings.dags_dir, servers, reload, headroom)
    sync = make_sync(settings, release) if settings.sync_enabled else None
    if role == "webserver":  # /health answers (503) while the code server and the webserver start

        def details():
            return {"dags": dag_status(sync)}

        def sync_now():
            """POST /_dags/sync (the publisher, right after writing the manifest): poll now, say what is live."""
            if sync is None:
                return {"last_error": "DAG sync is off in this task (DAGSTER_DAG_SYNC)", **dag_status(None)}
            started = time.monotonic()
            went_live = sync.poll()
            answer = {**dag_status(sync), "changed": went_live, "seconds": round(time.monotonic() - started, 2)}
            # the short reload window, and why; also when the poll loop released the version just before this request
            if release.stopped_first and release.stopped_first[0] == answer["version"]:
                answer["stopped_first"] = release.stopped_first[1]
            return answer

        serve(settings.health_port, HealthCache(lambda: check_webserver(settings.graphql_url)), details, sync_now)
    release.start_live()
    while not stop.wait(settings.sync_interval if sync else 10):
        if sync:
            sync.poll()
        if not release.tick():
            LOG.error("no code server runs for the live DAGs; starting one")
            release.start_live()
    servers.stop_all()
    return 0


def dag_status(sync: DagSync | None) -> dict:
    """The sync's public status: what is live and the last failure (no paths, no credentials)."""
    if sync is None:
        return {"source": "builtin", "version": None, "synced_at": None, "last_error": None, "consecutive_failures": 0}
    public = ("source", "version", "synced_at", "last_error", "consecutive_failures")
    return {key: value for key, value in asdict(sync.status).items() if key in public}


def healthcheck(role: str, settings: Settings) -> int:
    if role == "webserver":
        url = f"http://127.0.0.1:{settings.nginx_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=8) as response:  # noqa: S310 - loopback
                return 0 if response.status == 200 else 1
        except (urllib.error.URLError, OSError):
            return 1
    if role == "daemon":  # recent heartbeats of every daemon in the instance's storage (liveness.py)
        try:
            live, reason = liveness.check(settings)
        except Exception as exc:  # noqa: BLE001 - any failure to look is an unhealthy answer, said in one line
            live, reason = False, f"cannot read the heartbeats: {type(exc).__name__}: {str(exc).strip()[:200]}"
        print(reason)
        return 0 if live else 1
    print(f"healthcheck: unknown role {role!r}; expected one of {ROLES}", file=sys.stderr)
    return 2


def after_socket(path: str, argv: list[str], timeout: float = 300) -> int:
    """Exec ``argv`` once the Unix socket ``path`` accepts connections (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
                break
            except OSError:
                pass
        time.sleep(0.2)
    else:
        LOG.warning("nothing listens on %s after %.0fs; starting %s anyway", path, timeout, argv[0])
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def migrate(settings: Settings) -> int:
    """Bring the instance's storage schema to this image's Dagster (``dagster instance migrate``).

    No DAG sync: the migration needs the instance's storage only. Its dagster.yaml names the default run
    launcher: ``dagster instance migrate`` loads the whole instance, and the ECS launcher's settings (the
    run task definition) belong to the services, not to this task. A database that refuses the task's
    credentials fails here with the server's error line (the ecs stage shows the task's log).
    """
    import dagster

    for directory in (settings.home, settings.runtime_dir, settings.storage_dir):
        directory.mkdir(parents=True, exist_ok=True)
    try:
        _step(
            1,
            2,
            "Dagster storage",
            check_database,
            "DAGSTER_POSTGRES_* (the task definition's database secret) against the RDS instance's master password",
        )
    except StepFailed:
        return 1  # the server's own line, short enough for the ecs stage's failure message
    write_all(replace(settings, run_launcher="default"), None)
    LOG.info("step 2/2 migrating the instance's storage to dagster %s", dagster.__version__)
    sys.stdout.flush()
    os.execvp("dagster", ["dagster", "instance", "migrate"])
    return 0  # not reached


def run_command(argv: list[str], settings: Settings) -> int:
    """A one-off command (EcsRunLauncher's run worker): same instance and DAGs, then exec.

    The run's code origin names the DAG version directory the launching code server loaded
    (``.dags.versions/<version>``): that version is synced from the manifest history, so the run
    executes the code it was launched with even when a newer version went live in between, with that
    version's dependency layer, if any, on the run worker's ``PYTHONPATH``.
    """
    for directory in (settings.home, settings.runtime_dir, settings.storage_dir):
        directory.mkdir(parents=True, exist_ok=True)
    pinned = re.search(rf"\.{re.escape(settings.dags_dir.name)}\.versions/([0-9a-f]{{16}})", " ".join(argv))
    initial_sync(settings, total=4, first=2, version=pinned.group(1) if pinned else None)
    use_layer(settings)
    write_all(settings, None)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def use_layer(settings: Settings) -> None:
    """Put the synced version's dependency layer, if it has one, on this process's ``PYTHONPATH`` (a run
    task: the run worker exec'd next imports it). The image's DAGs have none."""
    directory = settings.dags_dir.resolve()
    if not directory.is_relative_to(links.versions_dir(settings.dags_dir).resolve()):
        return
    path = layers.pythonpath(directory).get("PYTHONPATH")
    if path and path != os.environ.get("PYTHONPATH"):
        os.environ["PYTHONPATH"] = path
        LOG.info("DAG version %s: its dependency layer is on PYTHONPATH", directory.name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout, force=True
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    settings = Settings.from_env()
    command, rest = argv[0], argv[1:]
    if command == "version":
        print(__version__)
        return 0
    if command in ROLES:
        return start_service(command, settings)
    if command == "sidecar" and rest:
        return sidecar(rest[0], settings)
    if command == "after-socket" and len(rest) >= 2:
        return after_socket(rest[0], rest[1:])
    if command == "healthcheck" and rest:
        return healthcheck(rest[0], settings)
    if command == "migrate" and not rest:
        return migrate(settings)
    if command == "render":
        write_all(settings, rest[0] if rest else None)
        return 0
    return run_command(argv, settings)


__all__ = ["main", "AuthError"]

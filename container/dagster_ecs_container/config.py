"""Render the container's configuration files from the templates and the settings."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import sys
from importlib import resources
from pathlib import Path

from .settings import Settings

_TOKEN = re.compile(r"\{\{\s*(\w+)\s*\}\}")
ROLES = ("webserver", "daemon")
# The task definition's secrets, as environment variables. The basic-auth pair is needed only to write
# the htpasswd: the entrypoint drops it before any child starts. The database password is needed by the
# processes that open the storage (webserver, daemon, code servers and the sidecar that starts them).
BASIC_AUTH_ENV = ("BASIC_AUTH_USER", "BASIC_AUTH_PASSWORD")
DATABASE_PASSWORD_ENV = "DAGSTER_POSTGRES_PASSWORD"  # noqa: S105 - a variable's name, not a password


def template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text()


def render(text: str, values: dict) -> str:
    """Replace ``{{ name }}`` tokens; an unknown name is an error, not an empty string."""

    def _value(match):
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template token {key!r} has no value")
        return str(values[key])

    return _TOKEN.sub(_value, text)


def fragment(name: str) -> str:
    """A template included in another: without a document marker, which would start a second document."""
    return template(name).removeprefix("---\n").strip()


def values(settings: Settings) -> dict:
    launcher = {  # JSON is YAML: lists and strings render safely into the run launcher's config
        "ecs_cluster": json.dumps(settings.cluster),
        "run_subnets": json.dumps(settings.run_subnets),
        "run_security_groups": json.dumps(settings.run_security_groups),
    }
    name = f"run_launcher_{'ecs' if settings.run_launcher == 'ecs' else 'default'}.yaml"
    return {
        "max_concurrent_runs": settings.max_concurrent_runs,
        "run_launcher": render(fragment(name), launcher),
        "storage_dir": settings.storage_dir,
        "dags_dir": settings.dags_dir,
        "runtime_dir": settings.runtime_dir,
        "nginx_listen": settings.nginx_listen,
        "nginx_port": settings.nginx_port,
        "webserver_port": settings.webserver_port,
        "health_port": settings.health_port,
        "codeserver_socket": settings.codeserver_socket,
        "htpasswd": settings.htpasswd,
        # Started as root (only ever outside the image), nginx's workers would drop to nobody and could
        # not read the 0600 htpasswd: keep them as the current user. The image runs everything non-root.
        "nginx_user": f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else "",
    }


def executable(name: str) -> str:
    """An executable next to this Python (the image's or the venv's), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def supervisord_conf(settings: Settings, role: str) -> str:
    """supervisord runs the role's programs in the foreground, logging to the container's stdout."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    run = settings.runtime_dir
    workspace = shlex.quote(str(settings.workspace))
    # The webserver and the daemon start once the sidecar's code server listens (they load from it).
    wait = f"{executable('dagster-ecs-entrypoint')} after-socket {shlex.quote(str(settings.codeserver_socket))}"
    programs = {}
    if role == "webserver":
        without_password = f"{executable('env')} -u {DATABASE_PASSWORD_ENV}"  # nginx never opens the storage
        programs["nginx"] = (
            f"{without_password} {settings.nginx_bin} -g 'daemon off;' -e stderr -p {run}/nginx -c {run}/nginx.conf",
            10,
        )
        programs["webserver"] = (
            f"{wait} {executable('dagster-webserver')} -h 127.0.0.1 -p {settings.webserver_port} -w {workspace}",
            20,
        )
    else:
        programs["daemon"] = (f"{wait} {executable('dagster-daemon')} run -w {workspace}", 20)
    programs["sidecar"] = (f"{executable('dagster-ecs-entrypoint')} sidecar {role}", 30)

    sections = [
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile={run}/supervisord.pid",
        "",
        "[unix_http_server]",
        f"file={settings.supervisor_socket}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{settings.supervisor_socket}",
    ]
    for name, (command, priority) in programs.items():
        sections += [
            "",
            f"[program:{name}]",
            f"command={command}",
            f"priority={priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=3",
            "startretries=100",
            "stopasgroup=true",
            "killasgroup=true",
            "stopwaitsecs=20",
            "redirect_stderr=true",
            "stdout_logfile=/dev/fd/1",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(sections) + "\n"


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_all(settings: Settings, role: str | None) -> None:
    """Write dagster.yaml and workspace.yaml, and for a service role nginx.conf and supervisord.conf."""
    vals = values(settings)
    write_atomically(settings.home / "dagster.yaml", render(template("dagster.yaml"), vals))
    write_atomically(settings.workspace, render(template("workspace.yaml"), vals))
    if role in ROLES:
        write_atomically(settings.runtime_dir / "supervisord.conf", supervisord_conf(settings, role))
    if role == "webserver":
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (settings.runtime_dir / "nginx" / sub).mkdir(parents=True, exist_ok=True)
        write_atomically(settings.runtime_dir / "nginx.conf", render(template("nginx.conf"), vals))

"""Start-up step: Dagster's storage (PostgreSQL) accepts this task's credentials.

A task that cannot open its database is of no use, and left running it only fails its health
check minutes later. Checked before anything starts, it exits at once with PostgreSQL's own
error line (e.g. ``FATAL: password authentication failed for user "dagster"``), which ECS reports
as the task's exit and the verify stage shows. A server that does not answer yet (an RDS instance
still starting) is retried until ``DAGSTER_DB_CHECK_TIMEOUT`` (60 s); refused credentials are
retried only briefly (a password change reaching the server), then fail.
"""

from __future__ import annotations

import os
import time

AUTH_FAILED = "28P01"  # invalid_password
AUTH_RETRIES = 3


def _error_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    fatal = [line for line in lines if "FATAL" in line or "error" in line.lower()]
    return (fatal or lines or [type(exc).__name__])[-1]


def connect(env, application_name: str = "dagster-ecs-entrypoint"):
    """A connection to Dagster's storage with the task's ``DAGSTER_POSTGRES_*`` settings (dagster.yaml's too)."""
    import psycopg2

    return psycopg2.connect(
        host=env["DAGSTER_POSTGRES_HOST"],
        port=int(env.get("DAGSTER_POSTGRES_PORT") or 5432),
        dbname=env.get("DAGSTER_POSTGRES_DB", "postgres"),
        user=env.get("DAGSTER_POSTGRES_USER", ""),
        password=env.get("DAGSTER_POSTGRES_PASSWORD", ""),
        connect_timeout=5,
        application_name=application_name,
    )


def check_database(env=None, sleep=time.sleep, clock=time.monotonic) -> str:
    """Connect once with the task's ``DAGSTER_POSTGRES_*`` settings; raise with the server's error."""
    env = os.environ if env is None else env
    host = env.get("DAGSTER_POSTGRES_HOST", "")
    if not host:
        return "not configured (no DAGSTER_POSTGRES_HOST): skipped"
    import psycopg2

    port = int(env.get("DAGSTER_POSTGRES_PORT") or 5432)
    name, user = env.get("DAGSTER_POSTGRES_DB", "postgres"), env.get("DAGSTER_POSTGRES_USER", "")
    deadline = clock() + float(env.get("DAGSTER_DB_CHECK_TIMEOUT") or 60)
    refused = 0
    while True:
        try:
            connect(env).close()
            return f"{user}@{host}:{port}/{name} accepts the task's credentials"
        except psycopg2.OperationalError as exc:
            line = _error_line(exc)
            refused += "password authentication failed" in line or getattr(exc, "pgcode", None) == AUTH_FAILED
            if refused >= AUTH_RETRIES or clock() >= deadline:
                raise RuntimeError(line) from None
        sleep(2)

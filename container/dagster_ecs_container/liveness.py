"""The daemon container's health check: every daemon the instance requires has a recent heartbeat.

The test is ``dagster-daemon liveness-check``'s (Dagster's ``all_daemons_live``, errors ignored): each
daemon type the instance requires has a heartbeat in the storage no older than Dagster's heartbeat
interval plus the tolerance (``DAGSTER_DAEMON_HEARTBEAT_TOLERANCE`` seconds, else Dagster's default).

Dagster's command imports all of Dagster to answer: ~2 CPU-seconds and ~110 MB each time, every 30 s in
a task of 0.25 vCPU and 512 MB (measured offline: 4.6 CPU-s a minute for a stack's two checks, as much as
the whole idle stack). Here only the first check of a task imports Dagster: it asks Dagster which daemons
this instance requires and for its two constants, and keeps the answer in the task's runtime directory,
keyed by the instance's ``dagster.yaml`` and the Dagster version. Every check then reads the heartbeats
with one ``SELECT`` on the storage's ``daemon_heartbeats`` table (Dagster's own JSON bodies).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from importlib import metadata

from .dbcheck import connect
from .settings import Settings

REQUIREMENTS = "required-daemons.json"


def _key(settings: Settings) -> str:
    instance = (settings.home / "dagster.yaml").read_bytes()
    return hashlib.sha256(instance + b"\0" + metadata.version("dagster").encode()).hexdigest()


def requirements(settings: Settings) -> dict:
    """The daemon types the instance requires, with Dagster's heartbeat interval and default tolerance."""
    path = settings.runtime_dir / REQUIREMENTS
    key = _key(settings)
    try:
        known = json.loads(path.read_text())
        if known.get("key") == key:
            return known
    except (OSError, ValueError):
        pass
    logging.disable(logging.INFO)  # Dagster's import and storage log INFO lines (alembic's plugins): not the answer
    try:
        from dagster import DagsterInstance
        from dagster._daemon.controller import (
            DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
            DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
        )

        with DagsterInstance.get() as instance:
            required = sorted(instance.get_required_daemon_types())
    finally:
        logging.disable(logging.NOTSET)
    known = {
        "key": key,
        "required": required,
        "interval": DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
        "tolerance": DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
    }
    with contextlib.suppress(OSError):  # kept if it can be: a check that cannot keep it still answers
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{REQUIREMENTS}.{os.getpid()}")
        partial.write_text(json.dumps(known))
        os.replace(partial, path)
    return known


def heartbeats(env) -> dict[str, float]:
    """Each daemon type's last heartbeat (a Unix time), from the storage's ``daemon_heartbeats`` table."""
    connection = connect(env, application_name="dagster-ecs-healthcheck")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT body FROM daemon_heartbeats")
            rows = cursor.fetchall()
    finally:
        connection.close()
    beats = {}
    for (body,) in rows:
        beat = json.loads(body)
        beats[beat["daemon_type"]] = float(beat["timestamp"])
    return beats


def late(needs: dict, beats: dict[str, float], now: float, tolerance: float) -> list[str]:
    """The required daemon types whose last heartbeat is missing or too old (``all_daemons_live``'s test)."""
    limit = needs["interval"] + tolerance
    return [kind for kind in needs["required"] if kind not in beats or now > beats[kind] + limit]


def check(settings: Settings, env=None, clock=time.time) -> tuple[bool, str]:
    """(live, a short reason) for the daemon's task."""
    env = os.environ if env is None else env
    needs = requirements(settings)
    tolerance = env.get("DAGSTER_DAEMON_HEARTBEAT_TOLERANCE")
    tolerance = int(tolerance) if tolerance else needs["tolerance"]
    missing = late(needs, heartbeats(env), clock(), tolerance)
    if missing:
        return False, f"no heartbeat within {needs['interval'] + tolerance:g}s from: {', '.join(missing)}"
    return True, f"{len(needs['required'])} daemons live"

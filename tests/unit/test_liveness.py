"""The daemon container's health check (container/dagster_ecs_container/liveness.py) answers as
``dagster-daemon liveness-check`` does, importing Dagster only once per task.

Which daemons are required comes from Dagster itself (a real instance on a temporary DAGSTER_HOME); the
heartbeat rows are Dagster's own serialization of ``DaemonHeartbeat``. Against the real storage, beside
Dagster's own command, the check runs in tests/integration/test_workload.py.
"""

from __future__ import annotations

import json
import time

import pytest
from dagster_ecs_container import entrypoint, liveness
from dagster_ecs_container.settings import Settings

INSTANCE = """run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
run_monitoring:
  enabled: true
"""


@pytest.fixture
def settings(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    found = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_HOME": str(home)})
    found.runtime_dir.mkdir(parents=True)
    return found


def test_the_required_daemons_are_dagsters_answer_kept_for_the_instance(settings, monkeypatch):
    from dagster import DagsterInstance
    from dagster._daemon.controller import (
        DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
        DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    )

    with DagsterInstance.get() as instance:
        expected = sorted(instance.get_required_daemon_types())
    assert {"QUEUED_RUN_COORDINATOR", "MONITORING", "SENSOR"} <= set(expected)
    needs = liveness.requirements(settings)
    assert needs["required"] == expected
    assert (needs["interval"], needs["tolerance"]) == (
        DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
        DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
    )

    def no_dagster():
        raise AssertionError("Dagster asked again for an instance it already answered for")

    monkeypatch.setattr(DagsterInstance, "get", staticmethod(no_dagster))
    assert liveness.requirements(settings) == needs  # from the runtime directory

    # another instance configuration (a new dagster.yaml): Dagster is asked again
    (settings.home / "dagster.yaml").write_text(INSTANCE.replace("enabled: true", "enabled: false"))
    with pytest.raises(AssertionError, match="already answered"):
        liveness.requirements(settings)
    monkeypatch.undo()
    monkeypatch.setenv("DAGSTER_HOME", str(settings.home))
    assert "MONITORING" not in liveness.requirements(settings)["required"]


class Storage:
    """psycopg2's connection as ``heartbeats`` uses it, holding rows of the daemon_heartbeats table."""

    def __init__(self, bodies):
        self.bodies, self.queries, self.closed = bodies, [], False

    def cursor(self):
        storage = self

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql):
                storage.queries.append(sql)

            def fetchall(self):
                return [(body,) for body in storage.bodies]

        return Cursor()

    def close(self):
        self.closed = True


def dagster_heartbeat(kind: str, timestamp: float) -> str:
    from dagster._daemon.types import DaemonHeartbeat
    from dagster._serdes import serialize_value

    return serialize_value(DaemonHeartbeat(timestamp, kind, "daemon-1", None))


def test_heartbeats_are_read_from_dagsters_own_rows(monkeypatch):
    storage = Storage([dagster_heartbeat("SENSOR", 1000.5), dagster_heartbeat("BACKFILL", 990.0)])
    monkeypatch.setattr(liveness, "connect", lambda env, application_name: storage)
    assert liveness.heartbeats({}) == {"SENSOR": 1000.5, "BACKFILL": 990.0}
    assert storage.queries == ["SELECT body FROM daemon_heartbeats"] and storage.closed


def test_a_daemon_is_late_as_dagster_counts_it():
    """Dagster: healthy while now <= last heartbeat + interval + tolerance; a required daemon with none is not."""
    needs = {"required": ["BACKFILL", "SENSOR"], "interval": 30, "tolerance": 1800}
    beats = {"SENSOR": 1000.0, "BACKFILL": 1000.0, "ASSET": 0.0}  # ASSET is not required here
    assert liveness.late(needs, beats, 1000.0 + 30 + 1800, 1800) == []
    assert liveness.late(needs, beats, 1000.0 + 30 + 1800.5, 1800) == ["BACKFILL", "SENSOR"]
    assert liveness.late(needs, {"SENSOR": 1000.0}, 1001.0, 1800) == ["BACKFILL"]
    assert liveness.late(needs, beats, 1001.0, -100) == ["BACKFILL", "SENSOR"]


def test_the_health_check_answers_in_one_line_and_fails_when_it_cannot_look(settings, monkeypatch, capsys):
    needs = {"required": ["SENSOR"], "interval": 30, "tolerance": 1800}
    monkeypatch.setattr(liveness, "requirements", lambda _settings: needs)
    monkeypatch.setattr(liveness, "heartbeats", lambda env: {"SENSOR": time.time() - 10})
    assert entrypoint.healthcheck("daemon", settings) == 0
    assert capsys.readouterr().out == "1 daemons live\n"
    monkeypatch.setenv("DAGSTER_DAEMON_HEARTBEAT_TOLERANCE", "-25")  # as Dagster's command reads it
    assert entrypoint.healthcheck("daemon", settings) == 1
    assert capsys.readouterr().out == "no heartbeat within 5s from: SENSOR\n"  # 10 s ago

    def refused(env):
        raise OSError('FATAL:  password authentication failed for user "dagster"')

    monkeypatch.setattr(liveness, "heartbeats", refused)
    assert entrypoint.healthcheck("daemon", settings) == 1
    out = capsys.readouterr().out
    assert out.startswith("cannot read the heartbeats: OSError: FATAL:  password authentication failed")
    assert json.dumps(out).count("\\n") == 1  # one line


def test_the_required_daemons_are_kept_where_the_task_has_no_runtime_directory_yet(settings, capsys):
    settings.runtime_dir.rmdir()
    assert "SENSOR" in liveness.requirements(settings)["required"]
    assert (settings.runtime_dir / liveness.REQUIREMENTS).exists()
    assert "alembic" not in capsys.readouterr().out  # Dagster's own INFO lines are not the check's answer

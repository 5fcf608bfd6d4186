"""Pure parts of the lifecycle work: the entrypoint's storage check, the runtime's record of a task's exit, SCRAM."""

from __future__ import annotations

import base64
import hashlib
import hmac
from types import SimpleNamespace

import psycopg2
import pytest
from dagster_ecs_container import dbcheck
from dagster_ecs_emulator import runtime
from dagster_ecs_emulator.rds_data import scram_verifier

ENV = {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_USER": "dagster", "DAGSTER_POSTGRES_PASSWORD": "pw"}
AUTH = (
    'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "dagster"'
)


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def connect(monkeypatch):
    """psycopg2.connect answering with the errors queued in ``answers`` (then success)."""
    answers, calls = [], []

    def _connect(**kwargs):
        calls.append(kwargs)
        if answers:
            raise psycopg2.OperationalError(answers.pop(0))
        return SimpleNamespace(close=lambda: None)

    monkeypatch.setattr(psycopg2, "connect", _connect)
    return answers, calls


def test_storage_check_accepts_what_connects(connect):
    answers, calls = connect
    assert dbcheck.check_database(ENV) == "dagster@127.0.0.1:5432/postgres accepts the task's credentials"
    assert calls[0]["password"] == "pw" and calls[0]["connect_timeout"] == 5


def test_refused_credentials_fail_after_a_few_tries_with_the_servers_line(connect):
    answers, calls = connect
    answers.extend([AUTH + "\n"] * 5)
    clock = Clock()
    with pytest.raises(RuntimeError) as error:
        dbcheck.check_database(ENV, sleep=clock.sleep, clock=lambda: clock.now)
    assert str(error.value) == AUTH
    assert len(calls) == dbcheck.AUTH_RETRIES and clock.sleeps == [2, 2]


def test_a_server_not_answering_yet_is_retried_until_the_timeout(connect):
    answers, calls = connect
    answers.extend(["could not connect to server: Connection refused"] * 100)
    clock = Clock()
    with pytest.raises(RuntimeError, match="Connection refused"):
        dbcheck.check_database({**ENV, "DAGSTER_DB_CHECK_TIMEOUT": "10"}, sleep=clock.sleep, clock=lambda: clock.now)
    assert len(calls) == 6  # at 0, 2, 4, 6, 8 and 10 s


def test_a_server_that_comes_up_is_accepted(connect):
    answers, calls = connect
    answers.extend(["Connection refused"] * 3)
    clock = Clock()
    assert "accepts" in dbcheck.check_database(ENV, sleep=clock.sleep, clock=lambda: clock.now)


def test_no_database_configured_is_skipped(connect):
    assert dbcheck.check_database({}).startswith("not configured")
    assert connect[1] == []


def test_the_error_line_of_a_task_is_its_last_failure_since_it_started(tmp_path):
    log = tmp_path / "webserver.log"
    log.write_text(
        "\n--- 2026-12-02 07:00:00 starting td:1\nERROR an old task's error\n"
        "\n--- 2026-12-02 07:01:00 starting td:1\n"
        "step 1/7 basic auth: ok\n"
        f"step 2/7 Dagster storage: FAILED: {AUTH} -- check DAGSTER_POSTGRES_*\n"
        "\n"
    )
    tail = runtime.task_log_tail(log)
    assert tail == ["step 1/7 basic auth: ok", f"step 2/7 Dagster storage: FAILED: {AUTH} -- check DAGSTER_POSTGRES_*"]
    assert runtime.error_line(tail) == tail[1]
    stamped = "2026-12-02 08:01:49,350 dagster_ecs.entrypoint ERROR step 2/7 Dagster storage: FAILED: x"
    assert runtime.error_line([stamped]) == "dagster_ecs.entrypoint ERROR step 2/7 Dagster storage: FAILED: x"
    assert runtime.error_line(["just the last line"]) == "just the last line"
    assert runtime.task_log_tail(tmp_path / "missing.log") == []


def test_exits_with_the_same_error_are_counted_in_a_row(tmp_path):
    log = tmp_path / "daemon.log"
    rt = runtime.Runtime.__new__(runtime.Runtime)
    rt.last_exit = {}
    task = SimpleNamespace(log=log, task_definition="td:1", process=SimpleNamespace(returncode=1))
    for n, (error, expected) in enumerate(
        (("FATAL a", 1), ("FATAL a", 2), ("FATAL b", 1), ("FATAL b", 2), ("FATAL b", 3))
    ):  # each with its own time stamp, as the entrypoint logs them
        log.write_text(f"\n--- now starting td:1\n2026-12-02 08:01:4{n},350 {error}\n")
        rt.record_exit("daemon", task)
        assert rt.last_exit["daemon"]["same_error"] == expected
    assert rt.last_exit["daemon"] | {"at": 0} == {
        "task_definition": "td:1",
        "code": 1,
        "at": 0,
        "error": "FATAL b",
        "tail": ["2026-12-02 08:01:44,350 FATAL b"],
        "same_error": 3,
    }


def test_scram_verifier_is_postgresqls_format():
    verifier = scram_verifier("pencil", b"0123456789abcdef", 4096)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(salt), 4096)
    assert (method, iterations) == ("SCRAM-SHA-256", "4096")
    assert server_key == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert stored_key == hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()

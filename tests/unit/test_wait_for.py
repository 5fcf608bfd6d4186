"""stage_checks.wait_for: the one wait loop of the tests (and of the molecule verify checks)."""

from __future__ import annotations

import itertools
import socket

import pytest
from support.net import wait_for, wait_for_status


def test_returns_the_first_value_until_accepts():
    answers = iter([None, (503, b"starting"), (200, b"ok\n"), (200, b"later")])
    got = wait_for(lambda: next(answers), 5, 0, "/health", until=lambda answer: answer == (200, b"ok\n"))
    assert got == (200, b"ok\n")


def test_by_default_the_first_truthy_value():
    answers = iter([0, "", [], {"status": "SUCCESS"}])
    assert wait_for(lambda: next(answers), 5, 0) == {"status": "SUCCESS"}


def test_timeout_names_what_and_the_last_answer():
    count = itertools.count()
    expected = r"timed out after 0.05s waiting for /health; the last answer: \(503, \d+\)"
    with pytest.raises(AssertionError, match=expected):
        wait_for(lambda: (503, next(count)), 0.05, 0.01, "/health", until=lambda answer: answer[0] == 200)


def test_probes_once_more_at_the_deadline():
    """A condition met during the last interval is not reported as a timeout."""
    answers = iter([False, True])
    assert wait_for(lambda: next(answers), 0.01, 0.05) is True


def test_wait_for_status_until_the_url_answers_it():
    """Against a closed port (status None) it times out naming None; a real server's 404 is not 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/health"
    with pytest.raises(AssertionError, match=r"waiting for .*/health to answer 200; the last answer: None"):
        wait_for_status(closed, 200, 0.05, 0.01, request_timeout=0.2)

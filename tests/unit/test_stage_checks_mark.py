"""stage_checks.py --mark: molecule's verify marks its stage built only once every check passed.

A marker that is missing costs a later scenario's prepare a site.yml run it did not need; one written after a
failed check would let a later scenario start on a stage that is not there. The checks are replaced by stubs:
what is tested is the command line, not a stage.
"""

from __future__ import annotations

import pytest
from support import stage_checks

ARGS = ["--endpoint", "http://127.0.0.1:9"]  # nothing listens; the stubs never call it


def test_the_mark_is_written_once_every_check_passed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(stage_checks.CHECKS, "network", lambda stack: calls.append(("network", stack.project)))
    monkeypatch.setitem(stage_checks.CHECKS, "logging", lambda stack: calls.append(("logging", stack.project)))
    mark = tmp_path / "stages" / "p" / "network"  # its directories are created too
    assert stage_checks.main(["network", "logging", *ARGS, "--project", "p", f"--mark={mark}"]) == 0
    assert calls == [("network", "p"), ("logging", "p")]
    assert mark.is_file() and mark.read_bytes() == b""


def test_no_mark_after_a_failed_check(tmp_path, monkeypatch, capsys):
    def failing(stack):
        raise AssertionError("no VPC")

    monkeypatch.setitem(stage_checks.CHECKS, "network", lambda stack: None)
    monkeypatch.setitem(stage_checks.CHECKS, "logging", failing)
    mark = tmp_path / "network"
    with pytest.raises(AssertionError, match="no VPC"):
        stage_checks.main(["network", "logging", *ARGS, f"--mark={mark}"])
    assert not mark.exists()
    assert "FAILED: logging" in capsys.readouterr().err


def test_without_mark_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(stage_checks.CHECKS, "network", lambda stack: None)
    monkeypatch.chdir(tmp_path)
    assert stage_checks.main(["network", *ARGS]) == 0
    assert list(tmp_path.iterdir()) == []

"""tests/bench/cpu.py reads the kernel's acct v3 records and puts each process in its kind by its ancestors."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from support.paths import ROOT

_spec = importlib.util.spec_from_file_location("bench_cpu", ROOT / "tests" / "bench" / "cpu.py")
cpu = sys.modules["bench_cpu"] = importlib.util.module_from_spec(_spec)  # (dataclasses look it up)
_spec.loader.exec_module(cpu)

STARTED = 1_800_000_000


def record(pid, ppid, name, ticks=0, forked=False, started=STARTED, version=3, exponent=0) -> bytes:
    """One struct acct_v3 as the kernel writes it; ``ticks`` of user time (comp_t, with ``exponent``)."""
    utime = (exponent << 13) | ticks
    return cpu.RECORD.pack(
        cpu.AFORK if forked else 0, version, 0, 0, 0, 0, pid, ppid, started, 1.0, utime, 0, 0, 0, 0, 0, 0, 0,
        name.encode()[:16].ljust(16, b"\0"),
    )  # fmt: skip


def test_records_are_parsed_with_comp_t_times():
    (process,) = cpu.parse(record(10, 1, "ansible-playbook", ticks=5, exponent=1))
    assert (process.pid, process.ppid, process.name, process.forked) == (10, 1, "ansible-playbook", False)
    assert process.cpu == 5 * 8 / cpu.AHZ


def test_a_record_of_another_version_is_refused():
    with pytest.raises(ValueError, match="not acct v3"):
        cpu.parse(record(10, 1, "sh", version=2))


def test_each_process_is_put_in_its_kind_by_its_ancestors():
    # In the order they end: children before their parents. pid 30 is used twice: first by a module's
    # python, then (after it ended) by the local runtime; its webserver's parent is the second one.
    data = b"".join(
        [
            record(30, 21, "python", ticks=50),  # the module, under the worker's sh
            record(21, 20, "sh"),
            record(20, 10, "ansible-playboo", ticks=2, forked=True),  # a worker
            record(10, 1, "ansible-playboo", ticks=80),  # the controller
            record(31, 30, "dagster-webserv", ticks=300, started=STARTED + 5),
            record(30, 1, "python", ticks=40, started=STARTED + 4),  # the runtime (pid 30 again)
            record(40, 1, "postgres", ticks=3),
            record(41, 1, "pytest", ticks=7),
            record(42, 1, "sleep"),
        ]
    )
    table = cpu.breakdown(cpu.parse(data))
    expected = {
        "Dagster processes": (3.0, 1),
        "Ansible controller and workers": (0.82, 2),
        "Ansible modules (AnsiballZ)": (0.5, 1),
        "local ECS runtime": (0.4, 1),
        "other Python (emulators, pytest)": (0.07, 1),
        "PostgreSQL": (0.03, 1),
        "Ansible workers' helper commands": (0.0, 1),
        "other commands": (0.0, 1),
    }
    assert table == {label: (pytest.approx(seconds), count) for label, (seconds, count) in expected.items()}
    assert list(table)[:2] == ["Dagster processes", "Ansible controller and workers"]  # most CPU first
    assert "9 processes ended, 5 CPU-s" in cpu.report(cpu.parse(data))

"""support.durations: make test's file order comes from pytest's recorded durations, not a hand-kept list."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from support import durations
from support.paths import ROOT


def report(nodeid, seconds):
    return SimpleNamespace(nodeid=nodeid, duration=seconds)


def test_the_recorder_sums_setup_call_and_teardown_per_file_and_merges(tmp_path):
    stored = tmp_path / "durations.json"
    stored.write_text(json.dumps({"integration/test_site.py": 200.0, "test_lint.py": 90.0}))
    recorder = durations.Recorder()
    for phase in (0.5, 30.0, 0.25):  # setup, call, teardown of one test
        recorder.add(report("tests/test_lint.py::test_ruff", phase))
    recorder.add(report("tests/unit/test_nginx.py::test_a[x]", 2.0))
    saved = recorder.save(stored)
    # test_site was not run: its figure stays; test_lint's is replaced by this run's
    assert saved == {"integration/test_site.py": 200.0, "test_lint.py": 30.8, "unit/test_nginx.py": 2.0}
    assert json.loads(stored.read_text()) == saved
    assert list(saved) == ["integration/test_site.py", "test_lint.py", "unit/test_nginx.py"]  # longest first


def test_files_start_longest_first_and_unrecorded_files_keep_their_order():
    tests = durations.TESTS
    names = ["unit/test_a.py", "test_lint.py", "unit/test_b.py", "test_molecule.py", "unit/test_c.py"]
    items = [SimpleNamespace(path=tests / name) for name in names]
    durations.longest_first(items, {"test_molecule.py": 700.0, "test_lint.py": 140.0})
    assert [item.path.relative_to(tests).as_posix() for item in items] == [
        "test_molecule.py",
        "test_lint.py",
        "unit/test_a.py",
        "unit/test_b.py",
        "unit/test_c.py",
    ]


def test_a_missing_or_broken_record_orders_nothing(tmp_path):
    assert durations.load(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert durations.load(tmp_path / "bad.json") == {}


def test_every_recorded_file_exists():
    """A renamed or removed test file is not left in the record (make test PYTEST_ARGS=--store-durations)."""
    recorded = durations.load()
    assert recorded, f"{durations.DURATIONS} is empty"
    missing = [name for name in recorded if not (durations.TESTS / name).is_file()]
    assert not missing, f"{durations.DURATIONS.name} names files that do not exist: {missing}"


def test_store_durations_writes_the_record_from_a_real_pytest_run(tmp_path):
    """The option end to end, in a pytest of its own, writing a file of the test's own."""
    record = tmp_path / "durations.json"
    test = "tests/unit/test_durations.py::test_a_missing_or_broken_record_orders_nothing"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--store-durations"]
        + ["--durations-file", str(record), test],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert list(json.loads(record.read_text())) == ["unit/test_durations.py"]

"""How long each test file takes, from pytest's own reports, so ``make test`` starts the long files first.

``make test`` runs files on 2 workers (xdist ``--dist loadfile --no-loadscope-reorder`` hands them out in
collection order; xdist's default would order them by number of tests and start the 2-test molecule
file last). Starting the longest files first keeps one worker from running a long file alone at the end.

The figures live in ``tests/durations.json``: seconds per file (paths relative to ``tests/``, so the collection's
unit tests are ``../collections/ansible_collections/...``), the sum of the setup, call and teardown durations
pytest reported for its tests in the last run that stored them.
Refresh them after a change that moves the figures a lot, from a whole run on the CI machine:
``make test PYTEST_ARGS=--store-durations`` (a partial run updates only the files it ran).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DURATIONS = TESTS / "durations.json"


def load(path: Path = DURATIONS) -> dict[str, float]:
    """The recorded seconds per file; none recorded (or an unreadable file) orders nothing."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {name: float(seconds) for name, seconds in recorded.items()} if isinstance(recorded, dict) else {}


def longest_first(items, recorded: dict[str, float]) -> None:
    """Sort ``items`` (pytest items) by their file's recorded seconds, longest first; files with no
    record keep their collection order, after the recorded ones (the sort is stable)."""

    def key(item):
        return -recorded.get(relative(item.path), 0.0)

    items.sort(key=key)


def relative(path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), TESTS)).as_posix()


class Recorder:
    """Sums each file's reported durations over a run; ``save`` merges them into the file."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, report) -> None:
        # node ids are relative to the rootdir, the repository (where pyproject.toml is)
        self.seconds[relative(TESTS.parent / report.nodeid.split("::", 1)[0])] += report.duration

    def save(self, path: Path = DURATIONS) -> dict[str, float]:
        merged = {**load(path), **{name: round(seconds, 1) for name, seconds in self.seconds.items()}}
        ordered = dict(sorted(merged.items(), key=lambda pair: (-pair[1], pair[0])))
        path.write_text(json.dumps(ordered, indent=1) + "\n")
        return ordered

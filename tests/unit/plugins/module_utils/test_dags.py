"""module_utils.dags: planning DAG publishes (pure functions)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ansible_collections.dagster_ecs.fargate.plugins.module_utils import dags
from dagster_ecs_container.manifest import FileEntry


def entry(char, size=1):
    return FileEntry(char * 64, size)


CURRENT = {"a.py": entry("a"), "b.py": entry("b"), "gone.py": entry("c")}
DESIRED = {"a.py": entry("a"), "b.py": entry("d"), "new.py": entry("e"), "copy.py": entry("a")}


def test_plan():
    assert dags.plan(CURRENT, DESIRED) == (["copy.py", "new.py"], ["b.py"], ["gone.py"])
    assert dags.plan(None, {"x": entry("a")}) == (["x"], [], [])
    assert dags.plan(CURRENT, CURRENT) == ([], [], [])


def test_objects_to_upload_are_new_contents_once():
    assert dags.objects_to_upload(CURRENT, DESIRED) == ["d" * 64, "e" * 64]
    assert dags.objects_to_upload(None, {"x": entry("a"), "y": entry("a")}) == ["a" * 64]


def test_listing():
    assert dags.listing({"b.py": entry("b", 7), "a.py": entry("a", 3)}) == (
        f"a.py  {'a' * 12}  3\nb.py  {'b' * 12}  7\n"
    )
    assert dags.listing(None) == ""


def test_prune_plan_keeps_the_newest_and_the_live_one():
    now = datetime(2026, 1, 1)
    history = [(f"v{i}", now + timedelta(minutes=i)) for i in range(5)]
    assert dags.prune_plan(history, "v4", 2) == (["v2", "v1", "v0"], ["v4", "v3"])
    assert dags.prune_plan(history, "v0", 2) == (["v2", "v1"], ["v4", "v3", "v0"])
    assert dags.prune_plan(history, None, 10) == ([], ["v4", "v3", "v2", "v1", "v0"])


def test_bundle_is_stale():
    files = {f"f{i}": entry("a") for i in range(200)}
    assert dags.bundle_is_stale(None, files)
    assert not dags.bundle_is_stale(files, files)
    changed = dict(files, **{f"f{i}": entry("b") for i in range(20)})
    assert not dags.bundle_is_stale(files, changed)  # 20 of 200: 10 %
    changed["f20"] = entry("b")
    assert dags.bundle_is_stale(files, changed)  # 21 > max(16, 20)
    small = {f"f{i}": entry("a") for i in range(10)}
    assert not dags.bundle_is_stale({}, dict(small, **{f"n{i}": entry("b") for i in range(6)}))  # 16 new
    assert dags.bundle_is_stale({}, dict(small, **{f"n{i}": entry("b") for i in range(7)}))

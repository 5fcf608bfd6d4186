"""dagster_ecs_container.plan: what a DAG publish or rollback writes (pure functions, no bucket); and the names
the publisher and the containers share, defined once in dagster_ecs_container.manifest.

test_plan, test_objects_to_upload_are_new_contents_once, test_prune_plan_keeps_the_newest_and_the_live_one and
test_bundle_is_stale were in module_utils/test_dags.py, where these functions were. This file was in
tests/unit/plugins/ (it tests the container package and the dags role, not the collection, so it did not move into
the collection with the plugins' tests).
"""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from dagster_ecs_container import manifest as mf
from dagster_ecs_container import plan as dags
from dagster_ecs_container.manifest import FileEntry

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "dagster_ecs" / "fargate"


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


# --- a publish, planned -------------------------------------------------------------------------------------------


def files_of(count, char="a", start=0):
    return {f"m{i:02}.py": FileEntry(f"{i:02}".ljust(64, char), 10) for i in range(start, start + count)}


def publish(current, files, base=None, data=b"tar.gz bytes"):
    built = []

    def build():
        built.append(True)
        return data

    step = dags.publish(current, files, assets=["a"], created_by="tester", base=base, build_bundle=build)
    return step, built


def test_a_first_small_publish_uploads_each_file_and_no_bundle():
    step, built = publish(None, {"a.py": entry("a"), "b.py": entry("a")})
    assert not step.unchanged and step.bundle == "none" and built == []
    assert step.uploads == ["a" * 64] and step.desired.previous is None and step.desired.bundle is None
    assert step.changes == (["a.py", "b.py"], [], [])
    assert step.desired.assets == ["a"] and step.desired.created_by == "tester"


def test_an_unchanged_publish_keeps_the_live_manifest_and_writes_nothing():
    live = mf.Manifest(files=files_of(10), created_by="x", bundle=mf.Bundle("f" * 64, 5, "older"))
    assert dags.unchanged(live, files_of(10)) and not dags.unchanged(None, files_of(10))
    assert dags.bundle_base(live, files_of(10)) is None  # nothing to read for an unchanged version
    step, built = publish(live, files_of(10))
    assert step.unchanged and step.desired is live and step.uploads == [] and built == []
    assert step.bundle == "reused"
    small = mf.Manifest(files=files_of(2), created_by="x")
    assert publish(small, files_of(2))[0].bundle == "none"


def test_eight_files_get_a_new_bundle_named_by_its_hash():
    assert mf.BUNDLE_MIN_FILES == 8
    assert publish(None, files_of(7))[0].bundle == "none"
    step, built = publish(None, files_of(8))
    assert built == [True] and step.bundle == "new" and step.bundle_data == b"tar.gz bytes"
    bundle = step.desired.bundle
    assert bundle == mf.Bundle(mf.sha256_bytes(b"tar.gz bytes"), len(b"tar.gz bytes"), step.desired.version)
    assert step.uploads[-1] == bundle.sha256 and len(step.uploads) == 9


def test_the_live_bundle_is_reused_while_few_files_differ_from_its_version():
    live = mf.Manifest(files=files_of(20), created_by="x")
    live.bundle = mf.Bundle("f" * 64, 5, live.version)
    changed = dict(files_of(20), **files_of(1, "b"))
    assert dags.bundle_base(live, changed) is None  # built from the live version: its files are at hand
    step, built = publish(live, changed)
    assert step.bundle == "reused" and built == [] and step.desired.bundle == live.bundle
    assert step.uploads == [files_of(1, "b")["m00.py"].sha256]
    stale = dict(files_of(20), **files_of(17, "b"))
    step, built = publish(live, stale)
    assert step.bundle == "new" and built == [True] and step.desired.bundle.version == step.desired.version


def test_a_bundle_of_an_older_version_is_judged_against_that_version():
    older = mf.Manifest(files=files_of(20), created_by="x")
    live = mf.Manifest(files=dict(files_of(20), **files_of(1, "b")), created_by="x")
    live.bundle = mf.Bundle("f" * 64, 5, older.version)
    files = dict(files_of(20), **files_of(2, "b"))
    assert dags.bundle_base(live, files) == older.version
    assert publish(live, files, base=older)[0].bundle == "reused"
    assert publish(live, files, base=None)[0].bundle == "new"  # its version left the history: rebuilt
    assert dags.bundle_base(live, files_of(7)) is None  # too small for a bundle: nothing to read
    assert dags.bundle_base(mf.Manifest(files=files_of(20), created_by="x"), files) is None  # no bundle


def test_a_rollback_restores_the_target_with_its_bundle_if_present():
    target = mf.Manifest(files=files_of(9), created_by="old", created_at="2026-01-01T00:00:00Z")
    target.bundle = mf.Bundle("f" * 64, 5, target.version)
    live = mf.Manifest(files=files_of(9, "b"), created_by="x", previous=target.version)
    assert dags.rollback_target(live, "previous") == target.version
    assert dags.rollback_target(live, "0123456789abcdef") == "0123456789abcdef"
    assert dags.rollback_target(target, "previous") is None
    restored = dags.restored(live, target, bundle_present=True)
    assert (restored.version, restored.previous, restored.bundle) == (target.version, live.version, target.bundle)
    assert (restored.created_by, restored.created_at) == ("old", "2026-01-01T00:00:00Z")
    assert dags.restored(live, target, bundle_present=False).bundle is None


def test_pruning_keeps_previous_and_the_bundles_version():
    now = datetime(2026, 1, 1)
    history = [(f"v{i}", now + timedelta(minutes=i)) for i in range(5)]
    live = mf.Manifest(files=files_of(1), created_by="x", previous="v1", bundle=mf.Bundle("f" * 64, 1, "v0"))
    after = dags.history_after(history, live.version)
    assert after[-1][0] == live.version and len(after) == 6
    assert dags.history_after(after, live.version) == after  # republished: one entry, the newest
    drop, kept = dags.retained(after, live, 2)
    assert kept == [live.version, "v4", "v1", "v0"] and drop == ["v3", "v2"]


def test_referenced_and_unreferenced_objects():
    one = mf.Manifest(files={"a.py": entry("a")}, created_by="x", bundle=mf.Bundle("f" * 64, 1, "v"))
    two = mf.Manifest(files={"b.py": entry("b")}, created_by="x")
    kept = dags.referenced([one, two])
    assert kept == {"a" * 64, "b" * 64, "f" * 64}
    listed = [f"team/dags/objects/{char * 64}" for char in "abcf"]
    assert dags.unreferenced("/team/dags/", listed, kept) == [f"team/dags/objects/{'c' * 64}"]


# --- one definition of what both sides share ----------------------------------------------------------------------


def test_history_and_object_names():
    assert mf.history_name("0123456789abcdef") == "manifests/0123456789abcdef.json"
    assert mf.history_version("0123456789abcdef.json") == "0123456789abcdef"
    assert mf.history_version("sub/x.json") is None and mf.history_version("notes.txt") is None
    assert mf.object_name("a" * 64) == "objects/" + "a" * 64
    assert mf.key("dags/", mf.history_name("v")) == "dags/manifests/v.json"


def _argument_default(module_path, option):
    """The default of ``option`` in a module's argument_spec (read from its source, not imported)."""
    tree = ast.parse(module_path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == option and isinstance(node.value, ast.Call):
            for keyword in node.value.keywords:
                if keyword.arg == "default":
                    return ast.literal_eval(keyword.value)
    raise AssertionError(f"no {option} in {module_path}")


@pytest.mark.parametrize(
    "where",
    ["dag_publish argument_spec", "dag_publish DOCUMENTATION", "role default", "role argument_specs", "container"],
)
def test_the_default_prefix_is_the_same_everywhere(where):
    """The prefix is written where Python cannot import it (YAML, a module's argument spec): this test ties
    every such place to manifest.DEFAULT_PREFIX."""
    module = COLLECTION / "plugins" / "modules" / "dag_publish.py"
    if where == "dag_publish argument_spec":
        value = _argument_default(module, "prefix")
    elif where == "dag_publish DOCUMENTATION":
        namespace = {}
        exec(compile(ast.Module([n for n in ast.parse(module.read_text()).body[:3]], []), "doc", "exec"), namespace)  # noqa: S102
        value = yaml.safe_load(namespace["DOCUMENTATION"])["options"]["prefix"]["default"]
    elif where == "role default":
        value = yaml.safe_load((ROOT / "roles/dags/defaults/main.yml").read_text())["dags_prefix"]
    elif where == "role argument_specs":
        specs = yaml.safe_load((ROOT / "roles/dags/meta/argument_specs.yml").read_text())
        value = specs["argument_specs"]["main"]["options"]["dags_prefix"]["default"]
    else:
        from dagster_ecs_container.settings import Settings

        value = Settings.from_env({}).dags_prefix
    assert value == mf.DEFAULT_PREFIX

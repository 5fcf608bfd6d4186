"""module_utils.dags: what the DAG modules show in --diff (pure functions).

The publish planning these tests also covered moved to the container package with the functions
(``dagster_ecs_container.plan``): test_plan, test_objects_to_upload_are_new_contents_once,
test_prune_plan_keeps_the_newest_and_the_live_one and test_bundle_is_stale are in
the repository's tests/unit/test_dag_plan.py, with their names.
"""

from __future__ import annotations

from ansible_collections.dagster_ecs.fargate.plugins.module_utils import dags
from dagster_ecs_container.manifest import FileEntry, Manifest


def entry(char, size=1):
    return FileEntry(char * 64, size)


def test_listing():
    assert dags.listing({"b.py": entry("b", 7), "a.py": entry("a", 3)}) == (
        f"a.py  {'a' * 12}  3\nb.py  {'b' * 12}  7\n"
    )
    assert dags.listing(None) == ""


def test_diff_of_a_first_publish_and_of_a_change():
    first = Manifest(files={"a.py": entry("a", 3)}, created_by="t")
    second = Manifest(files={"a.py": entry("b", 4)}, created_by="t")
    assert dags.diff(None, first) == {
        "before_header": "(nothing published)",
        "after_header": first.version,
        "before": "",
        "after": f"a.py  {'a' * 12}  3\n",
    }
    change = dags.diff(first, second)
    assert (change["before_header"], change["after_header"]) == (first.version, second.version)
    assert change["before"] == f"a.py  {'a' * 12}  3\n" and change["after"] == f"a.py  {'b' * 12}  4\n"

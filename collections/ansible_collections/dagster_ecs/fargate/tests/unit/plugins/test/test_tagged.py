"""The ``tagged`` Jinja test plugin (this file was tests/unit/test_tagged.py at the repository's root)."""

from __future__ import annotations

from ansible_collections.dagster_ecs.fargate.plugins.test import tagged as plugin

tagged = plugin.tagged

OWNER = {"Project": "p", "ManagedBy": "dagster-ecs-ansible"}


def test_dict_and_aws_lists():
    assert tagged({"Project": "p", "ManagedBy": "dagster-ecs-ansible", "x": "y"}, OWNER)
    assert tagged([{"Key": "Project", "Value": "p"}, {"Key": "ManagedBy", "Value": "dagster-ecs-ansible"}], OWNER)
    assert tagged([{"key": "Project", "value": "p"}, {"key": "ManagedBy", "value": "dagster-ecs-ansible"}], OWNER)


def test_missing_or_other_project_is_not_ours():
    assert not tagged({"Project": "p"}, OWNER)
    assert not tagged({"Project": "p2", "ManagedBy": "dagster-ecs-ansible"}, OWNER)
    assert not tagged(None, OWNER)
    assert not tagged([], OWNER)


def test_registered_as_a_jinja_test():
    assert plugin.TestModule().tests()["tagged"] is tagged

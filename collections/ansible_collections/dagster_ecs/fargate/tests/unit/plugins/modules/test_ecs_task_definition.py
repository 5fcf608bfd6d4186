"""ecs_task_definition: a new revision only when the definition changed (moto's ECS)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import ecs_task_definition

FAMILY = "dagster-ecs-webserver"
CONTAINER = {
    "name": "webserver",
    "image": "repo:1",
    "command": ["webserver"],
    "portMappings": [{"containerPort": 8080}],
    "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
}
ARGS = {
    "family": FAMILY,
    "cpu": "256",
    "memory": "512",
    "runtime_platform": {"cpu_architecture": "ARM64"},
    "execution_role_arn": "arn:aws:iam::123456789012:role/exec",
    "task_role_arn": "arn:aws:iam::123456789012:role/task",
    "containers": [CONTAINER],
    "tags": {"Project": "p"},
}


def args(**changes):
    result = copy.deepcopy(ARGS)
    result.update(changes)
    return result


@pytest.fixture
def registered(run_module, aws):
    """Revision 1 of the family."""
    result = run_module(ecs_task_definition, ARGS)
    aws.forget()
    return result


def active(aws, prefix=FAMILY):
    return aws.client("ecs").list_task_definitions(familyPrefix=prefix, status="ACTIVE")["taskDefinitionArns"]


def test_new_family_registers_revision_1(run_module, aws):
    result = run_module(ecs_task_definition, ARGS)
    assert result["changed"]
    assert result["revision"] == 1 and result["arn"].endswith(f"task-definition/{FAMILY}:1")
    assert result["differences"] == ["new family"]
    assert result["taskdefinition"]["family"] == FAMILY
    assert result["diff"]["before"] == {} and result["diff"]["before_header"] == "(none)"
    assert result["diff"]["after_header"] == f"{FAMILY}:(new revision)"
    assert result["diff"]["after"]["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
    register = aws.params("RegisterTaskDefinition")[0]
    assert register["tags"] == [{"key": "Project", "value": "p"}]
    assert register["networkMode"] == "awsvpc" and register["requiresCompatibilities"] == ["FARGATE"]
    assert register["executionRoleArn"].endswith("role/exec") and register["taskRoleArn"].endswith("role/task")


def test_unchanged_definition_registers_nothing(run_module, registered, aws):
    """ECS echoes defaults (essential, cpu 0, hostPort, protocol) and reorders lists: not a change."""
    result = run_module(ecs_task_definition, ARGS)
    assert not result["changed"]
    assert result["differences"] == [] and result["revision"] == 1
    assert result["diff"] == {}
    assert aws.count("RegisterTaskDefinition") == 0


def test_reordered_environment_is_not_a_change(run_module, registered, aws):
    container = dict(CONTAINER, environment=list(reversed(CONTAINER["environment"])), essential=True)
    result = run_module(ecs_task_definition, args(containers=[container]))
    assert not result["changed"]


@pytest.mark.parametrize(
    ("changes", "differences"),
    [
        ({"cpu": "512"}, ["cpu"]),
        ({"memory": "1024"}, ["memory"]),
        ({"runtime_platform": {"cpu_architecture": "X86_64"}}, ["runtimePlatform"]),
        ({"execution_role_arn": "arn:aws:iam::123456789012:role/other"}, ["executionRoleArn"]),
        ({"containers": [dict(CONTAINER, image="repo:2")]}, ["containerDefinitions[webserver]"]),
    ],
)
def test_a_change_registers_a_new_revision(run_module, registered, aws, changes, differences):
    result = run_module(ecs_task_definition, args(**changes))
    assert result["changed"]
    assert result["differences"] == differences
    assert result["revision"] == 2
    assert result["diff"]["before_header"] == f"{FAMILY}:1"
    assert result["diff"]["before"] != result["diff"]["after"]
    assert len(active(aws)) == 2


def test_check_mode_registers_nothing(run_module, registered, aws):
    result = run_module(ecs_task_definition, args(cpu="1024"), check_mode=True)
    assert result["changed"] and result["differences"] == ["cpu"]
    assert result["revision"] == 1  # still the current one
    assert aws.count("RegisterTaskDefinition") == 0


def test_check_mode_new_family(run_module, aws):
    result = run_module(ecs_task_definition, ARGS, check_mode=True)
    assert result["changed"] and result["taskdefinition"] == {} and "revision" not in result
    assert aws.count("RegisterTaskDefinition") == 0


def test_tags_converge_on_the_current_revision(run_module, registered, aws):
    result = run_module(ecs_task_definition, args(tags={"Owner": "me"}))
    assert result["changed"] and result["revision"] == 1
    assert result["diff"] == {"before": {"tags": {"Project": "p"}}, "after": {"tags": {"Owner": "me"}}}
    assert aws.params("TagResource")[0]["tags"] == [{"key": "Owner", "value": "me"}]
    assert aws.params("UntagResource")[0]["tagKeys"] == ["Project"]
    assert aws.count("RegisterTaskDefinition") == 0
    tags = aws.client("ecs").list_tags_for_resource(resourceArn=registered["arn"])["tags"]
    assert tags == [{"key": "Owner", "value": "me"}]


def test_absent_deregisters_every_active_revision_of_the_family_only(run_module, registered, aws):
    run_module(ecs_task_definition, args(cpu="512"))
    run_module(ecs_task_definition, args(family=f"{FAMILY}-other"))
    aws.forget()
    gone = {"family": FAMILY, "state": "absent"}
    checked = run_module(ecs_task_definition, gone, check_mode=True)
    assert checked["changed"] and len(checked["deregistered"]) == 2
    assert aws.count("DeregisterTaskDefinition") == 0
    result = run_module(ecs_task_definition, gone)
    assert result["changed"]
    assert sorted(result["deregistered"]) == sorted(checked["deregistered"])
    assert result["diff"] == {"before": {"active_revisions": result["deregistered"]}, "after": {"active_revisions": []}}
    assert result["taskdefinition"] == {} and result["differences"] == []
    assert active(aws) == [a for a in active(aws) if f"{FAMILY}-other:" in a]
    assert len(active(aws, f"{FAMILY}-other")) == 1
    assert not run_module(ecs_task_definition, gone)["changed"]


def test_family_with_only_inactive_revisions_is_new(run_module, registered, aws):
    def inactive(call, params):
        response = call()
        response["taskDefinition"]["status"] = "INACTIVE"
        return response

    aws.answer("DescribeTaskDefinition", inactive)
    result = run_module(ecs_task_definition, ARGS)
    assert result["changed"] and result["differences"] == ["new family"]


@pytest.mark.parametrize("container", [{"name": "x"}, {"image": "i"}])
def test_containers_need_a_name_and_an_image(run_module, aws, container):
    result = run_module(ecs_task_definition, args(containers=[container]))
    assert result["failed"] and result["msg"].startswith("every container needs a name and an image")
    assert aws.calls == []


def test_containers_are_required_when_present(run_module, aws):
    result = run_module(ecs_task_definition, {"family": FAMILY})
    assert result["failed"] and "containers" in result["msg"]


def test_optional_fields_are_left_out(run_module, aws):
    result = run_module(ecs_task_definition, {"family": FAMILY, "containers": [dict(CONTAINER, memory=128)]})
    assert result["changed"]
    register = aws.params("RegisterTaskDefinition")[0]
    assert not {"cpu", "memory", "taskRoleArn", "executionRoleArn", "runtimePlatform", "tags"} & set(register)


def test_runtime_platform_defaults(run_module, aws):
    run_module(ecs_task_definition, args(runtime_platform={}))
    assert aws.params("RegisterTaskDefinition")[0]["runtimePlatform"] == {
        "cpuArchitecture": "X86_64",
        "operatingSystemFamily": "LINUX",
    }


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("DescribeTaskDefinition", f"Failed to describe task definition family {FAMILY}"),
        ("RegisterTaskDefinition", f"Failed to register task definition {FAMILY}"),
    ],
)
def test_aws_errors(run_module, aws, operation, message):
    aws.fail(operation, "AccessDeniedException")
    result = run_module(ecs_task_definition, ARGS)
    assert result["failed"] and result["msg"].startswith(message)
    assert result["error"]["code"] == "AccessDeniedException"


def test_tag_errors(run_module, registered, aws):
    aws.fail("UntagResource", "ServerException", status=500)
    result = run_module(ecs_task_definition, args(tags={}))
    assert result["failed"] and result["msg"].startswith(f"Failed to untag {registered['arn']}")
    aws.fail("TagResource", "InvalidParameterException")
    result = run_module(ecs_task_definition, args(tags={"Project": "p", "X": "y"}))
    assert result["failed"] and result["msg"].startswith(f"Failed to tag {registered['arn']}")


def test_absent_errors(run_module, registered, aws):
    aws.fail("ListTaskDefinitions", "AccessDeniedException")
    result = run_module(ecs_task_definition, {"family": FAMILY, "state": "absent"})
    assert result["failed"] and result["msg"].startswith(f"Failed to list task definitions of {FAMILY}")
    aws.rules.clear()
    aws.fail("DeregisterTaskDefinition", "ClientException")
    result = run_module(ecs_task_definition, {"family": FAMILY, "state": "absent"})
    assert result["failed"] and result["msg"].startswith(f"Failed to deregister {registered['arn']}")


def test_throttled_register_is_retried(run_module, aws):
    aws.fail("DescribeTaskDefinition", "ThrottlingException", times=1)
    aws.fail("RegisterTaskDefinition", "ThrottlingException", times=2)
    result = run_module(ecs_task_definition, ARGS)
    assert result["changed"] and result["revision"] == 1
    assert aws.count("RegisterTaskDefinition") == 3 and len(aws.sleeps) == 3

"""appautoscaling_target: register, converge and deregister a scalable target (moto + emulated tag API)."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import appautoscaling_target

RESOURCE = "service/dagster-ecs/dagster-ecs-webserver"
ARGS = {"resource_id": RESOURCE, "min_capacity": 1, "max_capacity": 2}


@pytest.fixture
def service(aws):
    """An ECS service to scale (moto checks that it exists)."""
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="dagster-ecs")
    ecs.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": "i", "memory": 128}])
    ecs.create_service(cluster="dagster-ecs", serviceName="dagster-ecs-webserver", taskDefinition="web", desiredCount=1)
    aws.forget()
    return aws.client("application-autoscaling")


@pytest.fixture
def target(service, run_module, aws):
    """The target registered, tagged Project=p."""
    run_module(appautoscaling_target, dict(ARGS, tags={"Project": "p"}))
    aws.forget()
    return service


def described(aas):
    return aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[RESOURCE])["ScalableTargets"]


def test_registers_with_tags(run_module, service, aws):
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Project": "p"}))
    assert result["changed"]
    target = result["scalable_target"]
    assert target["resource_id"] == RESOURCE
    assert (target["min_capacity"], target["max_capacity"]) == (1, 2)
    assert target["service_namespace"] == "ecs" and target["scalable_dimension"] == "ecs:service:DesiredCount"
    assert target["tags"] == {"Project": "p"}
    assert target["arn"].startswith("arn:aws:application-autoscaling:")
    assert result["diff"] == {"before": {}, "after": {"min_capacity": 1, "max_capacity": 2}}
    assert aws.params("RegisterScalableTarget")[0]["Tags"] == {"Project": "p"}
    assert aws.count("TagResource") == 0  # tagged by the registration itself
    assert len(described(service)) == 1


def test_registers_without_tags(run_module, service, aws):
    result = run_module(appautoscaling_target, ARGS)
    assert result["changed"] and result["scalable_target"]["tags"] == {}
    assert "Tags" not in aws.params("RegisterScalableTarget")[0]


def test_second_run_changes_nothing(run_module, target, aws):
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Project": "p"}))
    assert not result["changed"]
    assert result["diff"] == {"before": {}, "after": {}}
    assert aws.count("RegisterScalableTarget") == aws.count("TagResource") == aws.count("UntagResource") == 0


def test_capacity_change_registers_again(run_module, target, aws):
    result = run_module(appautoscaling_target, dict(ARGS, max_capacity=4, tags={"Project": "p"}))
    assert result["changed"]
    assert result["diff"] == {
        "before": {"min_capacity": 1, "max_capacity": 2},
        "after": {"min_capacity": 1, "max_capacity": 4},
    }
    assert result["scalable_target"]["max_capacity"] == 4 == described(target)[0]["MaxCapacity"]
    assert "Tags" not in aws.params("RegisterScalableTarget")[0]  # existing target: tags are converged apart


def test_tags_converge_without_registering(run_module, target, aws):
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Owner": "me"}))
    assert result["changed"]
    assert result["diff"] == {"before": {"tags": {"Project": "p"}}, "after": {"tags": {"Owner": "me"}}}
    assert result["scalable_target"]["tags"] == {"Owner": "me"}
    assert aws.count("RegisterScalableTarget") == 0
    assert aws.params("UntagResource")[0]["TagKeys"] == ["Project"]
    kept = run_module(appautoscaling_target, dict(ARGS, tags={"New": "1"}, purge_tags=False))
    assert kept["scalable_target"]["tags"] == {"Owner": "me", "New": "1"}


def test_no_tags_leaves_tags_alone(run_module, target, aws):
    result = run_module(appautoscaling_target, ARGS)
    assert not result["changed"] and result["scalable_target"]["tags"] == {"Project": "p"}


def test_check_mode_new_target(run_module, service, aws):
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Project": "p"}), check_mode=True)
    assert result["changed"] and result["scalable_target"] == {}
    assert result["diff"]["after"] == {"min_capacity": 1, "max_capacity": 2, "tags": {"Project": "p"}}
    assert aws.count("RegisterScalableTarget") == 0 and described(service) == []


def test_check_mode_existing_target(run_module, target, aws):
    result = run_module(appautoscaling_target, dict(ARGS, min_capacity=0, tags={"X": "y"}), check_mode=True)
    assert result["changed"]
    assert result["diff"]["after"] == {"min_capacity": 0, "max_capacity": 2, "tags": {"X": "y"}}
    assert result["scalable_target"]["min_capacity"] == 1  # unchanged
    assert aws.count("RegisterScalableTarget") == aws.count("TagResource") == aws.count("UntagResource") == 0


def test_absent_deregisters(run_module, target, aws):
    result = run_module(appautoscaling_target, {"resource_id": RESOURCE, "state": "absent"}, check_mode=True)
    assert result["changed"] and aws.count("DeregisterScalableTarget") == 0
    assert result["diff"]["before"]["tags"] == {"Project": "p"}
    result = run_module(appautoscaling_target, {"resource_id": RESOURCE, "state": "absent"})
    assert result["changed"] and result["scalable_target"] == {}
    assert result["diff"]["after"] == {} and result["diff"]["before"]["max_capacity"] == 2
    assert described(target) == []
    again = run_module(appautoscaling_target, {"resource_id": RESOURCE, "state": "absent"})
    assert not again["changed"] and again["scalable_target"] == {}


@pytest.mark.parametrize(("low", "high"), [(3, 2), (-1, 2)])
def test_bad_bounds_fail_before_any_write(run_module, service, aws, low, high):
    result = run_module(appautoscaling_target, dict(ARGS, min_capacity=low, max_capacity=high))
    assert result["failed"]
    assert result["msg"] == f"min_capacity ({low}) must be >= 0 and <= max_capacity ({high})"
    assert aws.count("RegisterScalableTarget") == 0


def test_bounds_are_required_to_register(run_module, aws):
    result = run_module(appautoscaling_target, {"resource_id": RESOURCE})
    assert result["failed"] and "min_capacity" in result["msg"] and "max_capacity" in result["msg"]
    assert aws.calls == []


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        ("DescribeScalableTargets", "describe"),
        ("RegisterScalableTarget", "register"),
        ("ListTagsForResource", "list tags of"),
    ],
)
def test_aws_errors_name_the_call(run_module, service, aws, operation, what):
    aws.fail(operation, "AccessDeniedException")
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Project": "p"}))
    assert result["failed"]
    assert result["msg"].startswith(f"Failed to {what} scalable target {RESOURCE}: ")
    assert result["error"]["code"] == "AccessDeniedException"


def test_tag_and_deregister_errors(run_module, target, aws):
    aws.fail("TagResource", "ValidationException")
    result = run_module(appautoscaling_target, dict(ARGS, tags={"Project": "q"}))
    assert result["failed"] and result["msg"].startswith(f"Failed to tag scalable target {RESOURCE}")
    aws.fail("UntagResource", "ValidationException")
    result = run_module(appautoscaling_target, dict(ARGS, tags={}))
    assert result["failed"] and result["msg"].startswith(f"Failed to untag scalable target {RESOURCE}")
    aws.fail("DeregisterScalableTarget", "ObjectNotFoundException")
    result = run_module(appautoscaling_target, {"resource_id": RESOURCE, "state": "absent"})
    assert result["failed"] and result["msg"].startswith(f"Failed to deregister scalable target {RESOURCE}")


def test_throttling_and_5xx_are_retried(run_module, service, aws):
    aws.fail("DescribeScalableTargets", "ThrottlingException", times=2)
    aws.fail("RegisterScalableTarget", "InternalFailure", status=500, times=1)
    result = run_module(appautoscaling_target, ARGS)
    assert result["changed"]
    assert aws.count("RegisterScalableTarget") == 2
    assert len(aws.sleeps) == 3


def test_retries_give_up(run_module, service, aws):
    aws.fail("DescribeScalableTargets", "ThrottlingException")
    result = run_module(appautoscaling_target, ARGS)
    assert result["failed"] and "ThrottlingException" in result["msg"]
    assert aws.count("DescribeScalableTargets") == 10  # retry_decorator(retries=10)
    assert all(0 <= s <= 30 for s in aws.sleeps)


def test_other_dimension(run_module, aws):
    """Another namespace or dimension is passed as given (a describe only, nothing registered)."""
    args = {
        "resource_id": "table/t",
        "service_namespace": "dynamodb",
        "scalable_dimension": "dynamodb:table:ReadCapacityUnits",
    }
    result = run_module(appautoscaling_target, dict(args, state="absent"))
    assert not result["changed"]
    assert aws.params("DescribeScalableTargets")[0] == {
        "ServiceNamespace": "dynamodb",
        "ResourceIds": ["table/t"],
        "ScalableDimension": "dynamodb:table:ReadCapacityUnits",
    }


def test_describe_answer_for_another_resource_is_no_target(run_module, service, aws):
    other = {"ResourceId": "service/x/y", "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount"}
    aws.answer("DescribeScalableTargets", {"ScalableTargets": [dict(other, MinCapacity=1, MaxCapacity=1)]})
    result = run_module(appautoscaling_target, {"resource_id": RESOURCE, "state": "absent"})
    assert not result["changed"]


def test_helpers_for_targets_without_arn():
    targets = appautoscaling_target.Targets.__new__(appautoscaling_target.Targets)
    assert targets.tags({"ResourceId": RESOURCE}) == {}
    assert appautoscaling_target.to_result(None, {}) == {}

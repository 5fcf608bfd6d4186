"""cloudmap_namespace: a private DNS namespace, found by name and VPC (moto's Cloud Map and Route 53)."""

from __future__ import annotations

import re

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import cloudmap_namespace

NAME = "dagster-ecs.local"


@pytest.fixture
def vpcs(aws):
    """Two VPC ids (moto's Cloud Map and Route 53 do not look the VPCs up)."""
    return ["vpc-0aaaaaaaaaaaaaaa1", "vpc-0bbbbbbbbbbbbbbb2"]


@pytest.fixture
def namespace(run_module, vpcs, aws):
    """The namespace in the first VPC, described "Dagster", tagged Project=p."""
    result = run_module(
        cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "description": "Dagster", "tags": {"Project": "p"}}
    )
    aws.forget()
    return result["namespace"]


def listed(aws):
    return aws.client("servicediscovery").list_namespaces()["Namespaces"]


def test_creates_and_waits(run_module, vpcs, aws):
    args = {"name": NAME, "vpc_id": vpcs[0], "description": "Dagster", "tags": {"Project": "p"}}
    result = run_module(cloudmap_namespace, args)
    assert result["changed"]
    namespace = result["namespace"]
    assert namespace["id"].startswith("ns-") and namespace["arn"].endswith(namespace["id"])
    assert namespace["name"] == NAME and namespace["type"] == "DNS_PRIVATE"
    assert namespace["description"] == "Dagster" and namespace["tags"] == {"Project": "p"}
    assert namespace["hosted_zone_id"]
    assert result["diff"] == {"before": {}, "after": {"name": NAME, "description": "Dagster", "tags": {"Project": "p"}}}
    create = aws.params("CreatePrivateDnsNamespace")[0]
    assert create["Vpc"] == vpcs[0] and create["Tags"] == [{"Key": "Project", "Value": "p"}]
    assert aws.count("GetOperation") == 1


def test_second_run_changes_nothing(run_module, namespace, vpcs, aws):
    args = {"name": NAME, "vpc_id": vpcs[0], "description": "Dagster", "tags": {"Project": "p"}}
    result = run_module(cloudmap_namespace, args)
    assert not result["changed"]
    assert result["namespace"] == namespace
    assert aws.count("UpdatePrivateDnsNamespace") == aws.count("TagResource") == 0


def test_create_needs_a_vpc(run_module, aws):
    result = run_module(cloudmap_namespace, {"name": NAME})
    assert result["failed"] and result["msg"] == f"vpc_id is required to create namespace {NAME}"
    assert aws.count("CreatePrivateDnsNamespace") == 0


def test_check_mode_create(run_module, vpcs, aws):
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]}, check_mode=True)
    assert result["changed"] and result["namespace"] == {}
    assert result["diff"]["after"] == {"name": NAME, "description": "", "tags": {}}
    assert listed(aws) == []


def test_description_and_tags_converge(run_module, namespace, vpcs, aws):
    args = {"name": NAME, "vpc_id": vpcs[0], "description": "Other", "tags": {"Owner": "me"}}
    result = run_module(cloudmap_namespace, args)
    assert result["changed"]
    assert result["diff"] == {
        "before": {"description": "Dagster", "tags": {"Project": "p"}},
        "after": {"description": "Other", "tags": {"Owner": "me"}},
    }
    assert result["namespace"]["description"] == "Other" and result["namespace"]["tags"] == {"Owner": "me"}
    assert result["namespace"]["id"] == namespace["id"]
    update = aws.params("UpdatePrivateDnsNamespace")[0]
    assert update["Namespace"] == {"Description": "Other"} and update["UpdaterRequestId"]
    assert aws.count("GetOperation") == 1


def test_tags_not_given_are_left_alone(run_module, namespace, vpcs, aws):
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "description": "Dagster"})
    assert not result["changed"] and result["namespace"]["tags"] == {"Project": "p"}


def test_check_mode_update(run_module, namespace, vpcs, aws):
    args = {"name": NAME, "vpc_id": vpcs[0], "description": "Other", "tags": {}}
    result = run_module(cloudmap_namespace, args, check_mode=True)
    assert result["changed"]
    assert result["diff"]["after"] == {"description": "Other", "tags": {}}
    assert result["namespace"]["description"] == "Dagster"
    assert aws.count("UpdatePrivateDnsNamespace") == aws.count("UntagResource") == 0


def test_absent(run_module, namespace, vpcs, aws):
    args = {"name": NAME, "vpc_id": vpcs[0], "state": "absent"}
    checked = run_module(cloudmap_namespace, args, check_mode=True)
    assert checked["changed"] and aws.count("DeleteNamespace") == 0
    assert checked["diff"] == {"before": namespace, "after": {}}
    result = run_module(cloudmap_namespace, args)
    assert result["changed"] and result["namespace"] == {}
    assert aws.count("DeleteNamespace") == 1 and aws.count("GetOperation") == 1
    assert listed(aws) == []
    assert not run_module(cloudmap_namespace, args)["changed"]


def test_namespace_of_another_vpc_is_not_ours(run_module, namespace, vpcs, aws):
    """The same name in another VPC is another namespace: created apart, and the two are told apart."""
    other = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[1], "description": "Other VPC"})
    assert other["changed"] and other["namespace"]["id"] != namespace["id"]
    mine = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "description": "Dagster"})
    assert not mine["changed"] and mine["namespace"]["id"] == namespace["id"]
    ambiguous = run_module(cloudmap_namespace, {"name": NAME, "state": "absent"})
    assert ambiguous["failed"]
    assert ambiguous["msg"] == f"2 private namespaces are named {NAME}; set vpc_id to choose one"
    run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[1], "state": "absent"})
    assert [ns["Id"] for ns in listed(aws)] == [namespace["id"]]


def test_without_vpc_one_namespace_is_found(run_module, namespace, aws):
    result = run_module(cloudmap_namespace, {"name": NAME, "description": "Dagster"})
    assert not result["changed"] and result["namespace"]["id"] == namespace["id"]


def test_public_and_other_names_are_ignored(run_module, vpcs, aws):
    sd = aws.client("servicediscovery")
    sd.create_public_dns_namespace(Name=NAME, CreatorRequestId="public")
    sd.create_private_dns_namespace(Name="other.local", Vpc=vpcs[0], CreatorRequestId="other")
    aws.forget()
    result = run_module(cloudmap_namespace, {"name": NAME, "state": "absent"})
    assert not result["changed"]
    assert aws.count("GetNamespace") == 0


def test_namespace_without_hosted_zone_is_in_no_vpc(run_module, namespace, vpcs, aws):
    def without_zone(call, params):
        response = call()
        response["Namespace"]["Properties"] = {}
        return response

    aws.answer("GetNamespace", without_zone)
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "state": "absent"})
    assert not result["changed"]
    assert aws.count("GetHostedZone") == 0


def operation(status, **extra):
    return {"Operation": {"Id": "op-1", "Type": "CREATE_NAMESPACE", "Status": status, **extra}}


def test_operation_is_polled_until_done(run_module, vpcs, aws, clock):
    aws.answer("GetOperation", operation("SUBMITTED"), times=1)
    aws.answer("GetOperation", operation("PENDING"), times=1)
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]})
    assert result["changed"] and result["namespace"]["id"]
    assert aws.count("GetOperation") == 3
    assert clock.sleeps == [2, 2]


def test_failed_operation_fails_the_module(run_module, vpcs, aws, clock):
    aws.answer("GetOperation", operation("FAIL", ErrorCode="CANNOT_CREATE_HOSTED_ZONE", ErrorMessage="no zone"))
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]})
    assert result["failed"]
    assert re.fullmatch(
        r"Cloud Map operation \S+ \(CREATE_NAMESPACE\) failed: CANNOT_CREATE_HOSTED_ZONE: no zone", result["msg"]
    )


def test_operation_timeout(run_module, vpcs, aws, clock):
    aws.answer("GetOperation", operation("PENDING"))
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "wait_timeout": 5})
    assert result["failed"]
    assert result["msg"].startswith("Timed out after 5s waiting for Cloud Map operation ")
    assert sum(clock.sleeps) >= 5


@pytest.mark.parametrize(
    ("operation_name", "message"),
    [
        ("ListNamespaces", f"Failed to list Cloud Map namespaces named {NAME}"),
        ("GetNamespace", "Failed to read namespace ns-"),
        ("GetHostedZone", "Failed to read hosted zone "),
        ("ListTagsForResource", "Failed to list tags of arn:aws:servicediscovery:"),
        ("UpdatePrivateDnsNamespace", "Failed to update namespace ns-"),
    ],
)
def test_aws_errors(run_module, namespace, vpcs, aws, operation_name, message):
    aws.fail(operation_name, "AccessDeniedException")
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "description": "changed"})
    assert result["failed"]
    assert result["msg"].startswith(message) and "AccessDeniedException" in result["msg"]


def test_create_and_delete_errors(run_module, vpcs, aws):
    aws.fail("CreatePrivateDnsNamespace", "NamespaceAlreadyExists")
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]})
    assert result["failed"] and result["msg"].startswith(f"Failed to create namespace {NAME}")
    aws.rules.clear()
    run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]})
    aws.fail("DeleteNamespace", "ResourceInUse")
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0], "state": "absent"})
    assert result["failed"] and result["msg"].startswith("Failed to delete namespace ns-")


def test_throttled_calls_are_retried(run_module, vpcs, aws):
    aws.fail("CreatePrivateDnsNamespace", "ThrottlingException", times=1)
    aws.fail("GetOperation", "ServiceUnavailable", status=503, times=1)
    result = run_module(cloudmap_namespace, {"name": NAME, "vpc_id": vpcs[0]})
    assert result["changed"]
    assert aws.count("CreatePrivateDnsNamespace") == 2 and len(aws.sleeps) == 2


def test_to_result_of_nothing_and_of_a_sparse_namespace():
    assert cloudmap_namespace.to_result(None, {}) == {}
    sparse = {"Id": "ns-1", "Arn": "arn", "Name": "n"}
    assert cloudmap_namespace.to_result(sparse, {}) == {
        "id": "ns-1",
        "arn": "arn",
        "name": "n",
        "description": "",
        "type": None,
        "hosted_zone_id": None,
        "tags": {},
    }

"""ecr_tag: converge an ECR repository's tags (moto's ECR)."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import ecr_tag
from botocore.exceptions import EndpointConnectionError

REPO = "dagster-ecs"


@pytest.fixture
def ecr(aws):
    client = aws.client("ecr")
    arn = client.create_repository(repositoryName=REPO)["repository"]["repositoryArn"]
    client.tag_resource(resourceArn=arn, tags=[{"Key": "Project", "Value": "p"}, {"Key": "Old", "Value": "x"}])
    aws.forget()
    return client, arn


def tags_of(ecr):
    client, arn = ecr
    return {t["Key"]: t["Value"] for t in client.list_tags_for_resource(resourceArn=arn)["tags"]}


def test_adds_updates_and_purges(run_module, ecr):
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {"Project": "q", "New": "1"}})
    assert result["changed"]
    assert result["repository_arn"] == ecr[1]
    assert result["added_tags"] == {"Project": "q", "New": "1"}
    assert result["removed_tags"] == ["Old"]
    assert result["tags"] == {"Project": "q", "New": "1"} == tags_of(ecr)
    assert result["diff"] == {"before": {"tags": {"Project": "p", "Old": "x"}}, "after": {"tags": result["tags"]}}
    again = run_module(ecr_tag, {"repository_name": REPO, "tags": {"Project": "q", "New": "1"}})
    assert not again["changed"]
    assert again["added_tags"] == {} and again["removed_tags"] == []


def test_without_purge_keeps_other_tags(run_module, ecr):
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {"New": "1"}, "purge_tags": False})
    assert result["changed"] and result["removed_tags"] == []
    assert tags_of(ecr) == {"Project": "p", "Old": "x", "New": "1"}


def test_no_tags_given_leaves_tags_alone(run_module, ecr):
    result = run_module(ecr_tag, {"repository_name": REPO})
    assert not result["changed"]
    assert result["tags"] == tags_of(ecr) == {"Project": "p", "Old": "x"}


def test_check_mode_reports_without_writing(run_module, ecr, aws):
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {"Project": "q"}}, check_mode=True)
    assert result["changed"]
    assert result["tags"] == {"Project": "q"}
    assert tags_of(ecr) == {"Project": "p", "Old": "x"}
    assert aws.count("TagResource") == aws.count("UntagResource") == 0


def test_absent_removes_matching_values_or_any_value_when_empty(run_module, ecr):
    result = run_module(
        ecr_tag, {"repository_name": REPO, "state": "absent", "tags": {"Project": "other", "Old": "", "Gone": ""}}
    )
    assert result["changed"] and result["removed_tags"] == ["Old"]
    assert tags_of(ecr) == {"Project": "p"}
    result = run_module(ecr_tag, {"repository_name": REPO, "state": "absent", "tags": {"Project": "p"}})
    assert result["removed_tags"] == ["Project"] and tags_of(ecr) == {}
    assert not run_module(ecr_tag, {"repository_name": REPO, "state": "absent", "tags": {"Project": "p"}})["changed"]


def test_absent_requires_tags(run_module, aws):
    result = run_module(ecr_tag, {"repository_name": REPO, "state": "absent"})
    assert result["failed"] and "tags" in result["msg"]
    assert aws.calls == []


def test_registry_id_is_passed(run_module, ecr, aws):
    result = run_module(
        ecr_tag, {"repository_name": REPO, "registry_id": "123456789012", "tags": {"Project": "p"}, "purge_tags": False}
    )
    assert not result["changed"]
    assert aws.params("DescribeRepositories")[-1]["registryId"] == "123456789012"


def test_missing_repository_is_a_plain_failure(run_module, aws):
    result = run_module(ecr_tag, {"repository_name": "nope-repo", "tags": {}})
    assert result["failed"]
    assert result["msg"] == "ECR repository nope-repo does not exist"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("DescribeRepositories", f"Failed to describe ECR repository {REPO}"),
        ("ListTagsForResource", "Failed to list tags of arn:aws:ecr:"),
        ("TagResource", "Failed to update tags of arn:aws:ecr:"),
    ],
)
def test_aws_errors_fail_through_fail_json_aws(run_module, ecr, aws, operation, message):
    aws.fail(operation, "AccessDeniedException")
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {"New": "1"}, "purge_tags": False})
    assert result["failed"]
    assert result["msg"].startswith(message)
    assert "AccessDeniedException" in result["msg"]
    assert result["error"]["code"] == "AccessDeniedException"  # the response, as fail_json_aws adds it
    assert "boto3_version" in result


def test_untag_error(run_module, ecr, aws):
    aws.fail("UntagResource", "ServerException", status=500)
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {}})
    assert result["failed"] and result["msg"].startswith("Failed to update tags of")


def test_throttling_is_retried(run_module, ecr, aws):
    aws.fail("DescribeRepositories", "ThrottlingException", times=2)
    aws.fail("TagResource", "TooManyRequestsException", times=1)
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {"New": "1"}, "purge_tags": False})
    assert result["changed"]
    assert aws.count("DescribeRepositories") == 3 and aws.count("TagResource") == 2
    assert len(aws.sleeps) == 3


def test_connection_error_fails(run_module, aws):
    aws.fail("DescribeRepositories", exception=EndpointConnectionError(endpoint_url="https://ecr.example"))
    result = run_module(ecr_tag, {"repository_name": REPO, "tags": {}})
    assert result["failed"]
    assert "Could not connect to the endpoint URL" in result["msg"]

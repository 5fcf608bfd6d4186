"""ecr_image_info: which tags a repository holds, and a registry login (moto's ECR)."""

from __future__ import annotations

import base64
import json

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import ecr_image_info

REPO = "dagster-ecs"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {},
        "layers": [],
    }
)


@pytest.fixture
def ecr(aws):
    client = aws.client("ecr")
    client.create_repository(repositoryName=REPO)
    digest = client.put_image(repositoryName=REPO, imageManifest=MANIFEST, imageTag="0.1.0")["image"]["imageId"]
    aws.forget()
    return digest["imageDigest"]


def test_reports_present_and_missing_tags(run_module, ecr, aws):
    result = run_module(ecr_image_info, {"repository_name": REPO, "image_tags": ["0.1.0", "0.2.0"]})
    assert result["changed"] is False
    assert result["images"] == {"0.1.0": ecr}
    assert result["missing"] == ["0.2.0"]
    assert "login" not in result
    assert aws.count("DescribeImages") == 2


def test_no_tags_asked_is_no_call(run_module, ecr, aws):
    result = run_module(ecr_image_info, {"repository_name": REPO})
    assert result["images"] == {} and result["missing"] == []
    assert aws.calls == []


def test_login_decodes_the_token(run_module, ecr, aws):
    token = base64.b64encode(b"AWS:secret:with:colons").decode()
    aws.answer(
        "GetAuthorizationToken",
        {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://1.dkr.ecr.example"}]},
    )
    result = run_module(ecr_image_info, {"repository_name": REPO, "login": True}, check_mode=True)
    assert result["login"] == {
        "registry": "https://1.dkr.ecr.example",
        "username": "AWS",
        "password": "secret:with:colons",
    }


def test_login_against_moto(run_module, ecr):
    result = run_module(ecr_image_info, {"repository_name": REPO, "image_tags": ["0.1.0"], "login": True})
    assert result["login"]["username"] == "AWS"
    assert result["login"]["registry"].startswith("https://")


def test_missing_repository_fails(run_module, aws):
    result = run_module(ecr_image_info, {"repository_name": "nope-repo", "image_tags": ["1"]})
    assert result["failed"]
    assert result["msg"].startswith("Failed to describe image nope-repo:1")
    assert result["error"]["code"] == "RepositoryNotFoundException"


def test_login_error_fails(run_module, ecr, aws):
    aws.fail("GetAuthorizationToken", "AccessDeniedException")
    result = run_module(ecr_image_info, {"repository_name": REPO, "login": True})
    assert result["failed"]
    assert result["msg"].startswith("Failed to get an ECR authorization token")


def test_throttled_describe_is_retried(run_module, ecr, aws):
    aws.fail("DescribeImages", "ThrottlingException", times=3)
    result = run_module(ecr_image_info, {"repository_name": REPO, "image_tags": ["0.1.0"]})
    assert result["images"] == {"0.1.0": ecr}
    assert aws.count("DescribeImages") == 4 and len(aws.sleeps) == 3


def test_argument_errors(run_module, aws):
    assert "repository_name" in run_module(ecr_image_info, {})["msg"]
    result = run_module(ecr_image_info, {"repository_name": REPO, "login": "perhaps"})
    assert result["failed"] and "login" in result["msg"]

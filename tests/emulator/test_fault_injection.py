"""Fault injection (dagster_ecs_emulator/faults.py): AWS-shaped errors, over real HTTP with boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from dagster_ecs_emulator.faults import FAULTS_PATH, FaultInjector, FaultRule, error_response
from support.emulator import OFFLINE_CREDENTIALS, spawn_emulator

REGION = OFFLINE_CREDENTIALS["AWS_DEFAULT_REGION"]


def control(endpoint, method="GET", payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{endpoint}{FAULTS_PATH}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def client(endpoint, service, retries=None):
    config = Config(retries=retries or {"mode": "standard", "total_max_attempts": 5})
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )


NO_RETRY = {"mode": "standard", "total_max_attempts": 1}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """One emulator for the module; every test clears the rules it added."""
    emulator = spawn_emulator(tmp_path_factory.mktemp("faults"))
    try:
        yield emulator.endpoint
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def no_rules_left(request):
    yield
    if "endpoint" in request.fixturenames:
        control(request.getfixturevalue("endpoint"), "DELETE")


@pytest.mark.parametrize(
    ("service", "action", "call", "code"),
    [
        ("sts", "GetCallerIdentity", lambda c: c.get_caller_identity(), "Throttling"),
        ("ec2", "DescribeVpcs", lambda c: c.describe_vpcs(), "RequestLimitExceeded"),
        ("ecs", "ListClusters", lambda c: c.list_clusters(), "ThrottlingException"),
        ("elbv2", "DescribeLoadBalancers", lambda c: c.describe_load_balancers(), "Throttling"),
    ],
)
def test_two_throttles_are_retried_by_boto3_and_counted(endpoint, service, action, call, code):
    control(endpoint, "POST", {"service": service, "action": action, "error": "throttle", "count": 2})
    call(client(endpoint, service))
    [rule] = control(endpoint)["rules"]
    assert (rule["injected"], rule["passed"]) == (2, 1)
    # The third failure is seen by a client that does not retry, with AWS's error code.
    control(endpoint, "POST", {"service": service, "action": action, "error": "throttle"})
    with pytest.raises(ClientError) as failed:
        call(client(endpoint, service, NO_RETRY))
    assert failed.value.response["Error"]["Code"] == code


def test_5xx_codes_and_statuses(endpoint):
    control(
        endpoint,
        "POST",
        [
            {"service": "iam", "action": "ListRoles", "error": "internal"},
            {"service": "logs", "action": "DescribeLogGroups", "error": "unavailable"},
        ],
    )
    with pytest.raises(ClientError) as iam:
        client(endpoint, "iam", NO_RETRY).list_roles()
    assert iam.value.response["Error"]["Code"] == "InternalError"
    assert iam.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    with pytest.raises(ClientError) as logs:
        client(endpoint, "logs", NO_RETRY).describe_log_groups()
    assert logs.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert logs.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_s3_matched_by_method_and_path(endpoint):
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket="faults", CreateBucketConfiguration={"LocationConstraint": REGION})
    control(endpoint, "POST", {"service": "s3", "method": "PUT", "path": r"^/faults/?\?versioning", "count": 3})
    s3.list_objects_v2(Bucket="faults")  # same bucket, another call: not matched
    s3.put_bucket_versioning(Bucket="faults", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="faults")["Status"] == "Enabled"
    [rule] = control(endpoint)["rules"]
    assert (rule["injected"], rule["passed"]) == (3, 1)
    control(endpoint, "POST", {"service": "s3", "method": "GET", "path": r"^/faults"})
    with pytest.raises(ClientError) as failed:
        client(endpoint, "s3", NO_RETRY).list_objects_v2(Bucket="faults")
    assert failed.value.response["Error"]["Code"] == "SlowDown"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_a_failed_request_never_reaches_moto(endpoint):
    control(endpoint, "POST", {"service": "ec2", "action": "CreateVpc", "error": "internal"})
    ec2 = client(endpoint, "ec2", NO_RETRY)
    with pytest.raises(ClientError):
        ec2.create_vpc(CidrBlock="10.99.0.0/16")
    assert not [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.99.0.0/16"]


def test_probability_is_reproducible_with_a_seed(endpoint):
    spec = {"service": "sts", "action": "GetCallerIdentity", "probability": 0.5, "seed": 7}

    def outcomes():
        control(endpoint, "POST", spec)
        sts, seen = client(endpoint, "sts", NO_RETRY), []
        for _ in range(20):
            try:
                sts.get_caller_identity()
                seen.append("ok")
            except ClientError:
                seen.append("fail")
        [rule] = control(endpoint, "DELETE")["removed"]
        assert rule["injected"] == seen.count("fail") and rule["passed"] == seen.count("ok")
        return seen

    first = outcomes()
    assert 0 < first.count("fail") < 20
    assert outcomes() == first


def test_count_with_probability_caps_the_injections(endpoint):
    control(endpoint, "POST", {"service": "sts", "probability": 1.0, "count": 2})
    sts = client(endpoint, "sts", NO_RETRY)
    results = []
    for _ in range(4):
        try:
            sts.get_caller_identity()
            results.append("ok")
        except ClientError:
            results.append("fail")
    assert results == ["fail", "fail", "ok", "ok"]


def test_bad_rules_are_refused_and_add_nothing(endpoint):
    for bad in (
        {"action": "X"},
        {"service": "ec2", "error": "boom"},
        {"service": "ec2", "colour": "red"},
        {"service": "s3", "path": "("},
        {"service": "sts", "probability": 2},
        [1],
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            control(endpoint, "POST", [{"service": "sts"}, bad] if isinstance(bad, dict) else bad)
        assert refused.value.code == 400
    assert control(endpoint)["rules"] == []


def test_rules_loaded_at_start_from_the_environment(tmp_path, monkeypatch):
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps([{"service": "sts", "count": 1}]))
    monkeypatch.setenv("DAGSTER_ECS_EMULATOR_FAULTS", str(rules))
    emulator = spawn_emulator(tmp_path)  # inherits the environment: the rules file
    try:
        url = emulator.endpoint
        client(url, "sts").get_caller_identity()
        [rule] = control(url)["rules"]
        assert (rule["service"], rule["injected"], rule["passed"]) == ("sts", 1, 1)
    finally:
        emulator.stop()


def test_error_shapes():
    """Without HTTP: each protocol's body names the code where botocore looks for it."""
    _, headers, body = error_response("throttle", "json", "m")
    assert json.loads(body)["__type"] == "ThrottlingException"
    assert ("x-amzn-ErrorType", "ThrottlingException") in headers
    status, _, body = error_response("throttle", "ec2", "m")
    assert status.startswith("503") and b"<Errors><Error><Code>RequestLimitExceeded</Code>" in body
    status, _, body = error_response("unavailable", "query", "m")
    assert status.startswith("503") and b"<Type>Receiver</Type><Code>ServiceUnavailable</Code>" in body
    assert FaultRule.from_dict({"service": "elbv2"}).service == "elasticloadbalancing"
    assert FaultRule.from_dict({"service": "efs"}).count == 1


def test_control_endpoint_rejects_other_methods():
    injector = FaultInjector(lambda environ, start_response: [])
    seen = {}
    body = injector({"PATH_INFO": FAULTS_PATH, "REQUEST_METHOD": "PUT"}, lambda s, h: seen.update(status=s))
    assert seen["status"].startswith("405") and b"GET, POST or DELETE" in b"".join(body)

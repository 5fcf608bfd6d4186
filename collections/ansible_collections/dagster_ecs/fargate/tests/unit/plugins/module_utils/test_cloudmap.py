"""module_utils.cloudmap: Cloud Map calls, paginated lists, asynchronous operations, tags (against moto)."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.cloudmap import CloudMap
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import REGION


class Failed(Exception):
    pass


class Module:
    """An AnsibleAWSModule stand-in whose client() is a real boto3 client (moto answers)."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.params = {}

    def client(self, service, retry_decorator=None, **extra):
        import boto3
        from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

        return RetryingBotoClientWrapper(boto3.client(service, region_name=REGION), retry_decorator)

    def fail_json(self, **kwargs):
        raise Failed(kwargs)

    def fail_json_aws(self, exception, msg):
        raise Failed({"msg": msg, "code": exception.response["Error"]["Code"]})


@pytest.fixture
def cm(aws):
    return CloudMap(Module())


@pytest.fixture
def namespace(cm, aws):
    operation = cm.call("create", "create_private_dns_namespace", Name="x.local", Vpc="vpc-1", CreatorRequestId="r")
    namespace_id = cm.wait_operation(operation["OperationId"], 10)["NAMESPACE"]
    aws.forget()
    return cm.call("read", "get_namespace", Id=namespace_id)["Namespace"]


def test_request_ids_are_unique():
    assert CloudMap.request_id() != CloudMap.request_id()
    assert len(CloudMap.request_id()) == 32


def test_wait_operation_returns_the_targets(cm, namespace):
    operation = cm.call("update", "update_private_dns_namespace", Id=namespace["Id"], Namespace={"Description": "d"})
    assert cm.wait_operation(operation["OperationId"], 10) == {"NAMESPACE": namespace["Id"]}


def test_wait_operation_without_targets_is_true(cm, aws):
    aws.answer("GetOperation", {"Operation": {"Id": "op", "Status": "SUCCESS"}})
    assert cm.wait_operation("op", 10) is True


def test_wait_operation_failure(cm, aws):
    aws.answer("GetOperation", {"Operation": {"Id": "op", "Status": "FAIL", "Type": "DELETE_NAMESPACE"}})
    with pytest.raises(Failed) as failed:
        cm.wait_operation("op", 10)
    assert failed.value.args[0] == {"msg": "Cloud Map operation op (DELETE_NAMESPACE) failed: None: None"}


def test_paginate_collects_every_page(cm, aws):
    pages = iter(
        [
            {"Namespaces": [{"Id": "ns-1"}], "NextToken": "t"},
            {"Namespaces": [{"Id": "ns-2"}]},
        ]
    )
    aws.answer("ListNamespaces", lambda call, params: next(pages))
    assert cm.paginate("list", "list_namespaces", "Namespaces") == [{"Id": "ns-1"}, {"Id": "ns-2"}]
    assert aws.params("ListNamespaces")[1]["NextToken"] == "t"


def test_paginate_error(cm, aws):
    aws.fail("ListServices", "InvalidInput")
    with pytest.raises(Failed) as failed:
        cm.paginate("list the services", "list_services", "Services")
    assert failed.value.args[0] == {"msg": "Failed to list the services", "code": "InvalidInput"}


def test_paginate_retries_throttling_like_a_call(cm, aws):
    aws.fail("ListServices", "ThrottlingException", times=2)
    assert cm.paginate("list the services", "list_services", "Services") == []
    assert aws.count("ListServices") == 3 and len(aws.sleeps) == 2


def test_call_retries_and_fails(cm, aws):
    aws.fail("GetNamespace", "ThrottlingException", times=1)
    aws.fail("GetNamespace", "NamespaceNotFound", times=1)
    with pytest.raises(Failed) as failed:
        cm.call("read namespace ns-1", "get_namespace", Id="ns-1")
    assert failed.value.args[0] == {"msg": "Failed to read namespace ns-1", "code": "NamespaceNotFound"}
    assert aws.count("GetNamespace") == 2


def test_tags_converge(cm, namespace, aws):
    arn = namespace["Arn"]
    assert cm.tags(arn) == {}
    assert cm.converge_tags(arn, {"a": "1", "b": "2"}, True) == (
        True,
        {"before": {"tags": {}}, "after": {"tags": {"a": "1", "b": "2"}}},
    )
    assert cm.converge_tags(arn, {"a": "1"}, True)[0]
    assert aws.params("UntagResource") == [{"ResourceARN": arn, "TagKeys": ["b"]}]
    assert cm.tags(arn) == {"a": "1"}
    assert cm.converge_tags(arn, {"a": "1"}, True) == (False, {})


def test_tags_in_check_mode(aws, namespace):
    cm = CloudMap(Module(check_mode=True))
    changed, diff = cm.converge_tags(namespace["Arn"], {"a": "1"}, True)
    assert changed and diff["after"] == {"tags": {"a": "1"}}
    assert aws.count("TagResource") == 0

"""cloudmap_service: a Cloud Map service in a namespace (moto's Cloud Map)."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import cloudmap_service


@pytest.fixture
def namespaces(aws):
    """Two private namespaces' ids."""
    sd = aws.client("servicediscovery")
    ids = []
    for i, vpc in enumerate(("vpc-0aaaaaaaaaaaaaaa1", "vpc-0bbbbbbbbbbbbbbb2")):
        operation = sd.create_private_dns_namespace(Name=f"ns{i}.local", Vpc=vpc, CreatorRequestId=f"ns{i}")
        ids.append(sd.get_operation(OperationId=operation["OperationId"])["Operation"]["Targets"]["NAMESPACE"])
    aws.forget()
    return ids


@pytest.fixture
def service(run_module, namespaces, aws):
    """Service "webserver" in the first namespace: defaults, tagged Project=p."""
    result = run_module(
        cloudmap_service, {"name": "webserver", "namespace_id": namespaces[0], "tags": {"Project": "p"}}
    )
    aws.forget()
    return result["service"]


def args(namespaces, **extra):
    return {"name": "webserver", "namespace_id": namespaces[0], "tags": {"Project": "p"}, **extra}


def test_creates_with_defaults(run_module, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces))
    assert result["changed"]
    service = result["service"]
    assert service["id"].startswith("srv-") and service["arn"].endswith(service["id"])
    assert service["name"] == "webserver" and service["namespace_id"] == namespaces[0]
    assert service["dns_records"] == [{"type": "A", "ttl": 10}] and service["routing_policy"] == "MULTIVALUE"
    assert service["description"] == "" and service["tags"] == {"Project": "p"}
    assert result["diff"] == {
        "before": {},
        "after": {
            "name": "webserver",
            "namespace_id": namespaces[0],
            "description": "",
            "dns_records": [{"type": "A", "ttl": 10}],
            "routing_policy": "MULTIVALUE",
            "tags": {"Project": "p"},
        },
    }
    create = aws.params("CreateService")[0]
    assert create["HealthCheckCustomConfig"] == {"FailureThreshold": 1}
    assert create["Tags"] == [{"Key": "Project", "Value": "p"}]
    assert create["CreatorRequestId"]


def test_creates_without_health_check_or_tags(run_module, namespaces, aws):
    extra = {"custom_health_check": False, "dns_records": [{"type": "SRV", "ttl": 60}], "routing_policy": "WEIGHTED"}
    result = run_module(cloudmap_service, dict(args(namespaces, **extra), tags=None))
    assert result["changed"] and result["service"]["dns_records"] == [{"type": "SRV", "ttl": 60}]
    create = aws.params("CreateService")[0]
    assert "HealthCheckCustomConfig" not in create and "Tags" not in create
    assert create["DnsConfig"] == {"RoutingPolicy": "WEIGHTED", "DnsRecords": [{"Type": "SRV", "TTL": 60}]}


def test_second_run_changes_nothing(run_module, service, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces))
    assert not result["changed"] and result["service"] == service
    assert aws.count("UpdateService") == aws.count("TagResource") == 0


def test_check_mode_create(run_module, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces), check_mode=True)
    assert result["changed"] and result["service"] == {}
    assert aws.count("CreateService") == 0


def test_description_and_records_update_in_place(run_module, service, namespaces, aws):
    result = run_module(
        cloudmap_service, args(namespaces, description="web UI", dns_records=[{"type": "A", "ttl": 60}])
    )
    assert result["changed"]
    assert result["diff"] == {
        "before": {"description": "", "dns_records": [{"type": "A", "ttl": 10}]},
        "after": {"description": "web UI", "dns_records": [{"type": "A", "ttl": 60}]},
    }
    assert result["service"]["id"] == service["id"]
    assert result["service"]["description"] == "web UI" and result["service"]["dns_records"][0]["ttl"] == 60
    assert aws.params("UpdateService")[0]["Service"] == {
        "Description": "web UI",
        "DnsConfig": {"DnsRecords": [{"Type": "A", "TTL": 60}]},
    }
    assert aws.count("GetOperation") == 1


def test_tags_converge(run_module, service, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces, tags={"Owner": "me"}))
    assert result["changed"] and result["service"]["tags"] == {"Owner": "me"}
    assert result["diff"] == {"before": {"tags": {"Project": "p"}}, "after": {"tags": {"Owner": "me"}}}
    assert aws.count("UpdateService") == 0


def test_check_mode_update(run_module, service, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces, description="x", tags={}), check_mode=True)
    assert result["changed"] and result["service"]["description"] == ""
    assert aws.count("UpdateService") == aws.count("UntagResource") == 0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"routing_policy": "WEIGHTED"}, "routing_policy (MULTIVALUE -> WEIGHTED)"),
        ({"custom_health_check": False}, "custom_health_check (True -> False)"),
    ],
)
def test_immutable_settings_fail_and_name_the_difference(run_module, service, namespaces, aws, extra, named):
    result = run_module(cloudmap_service, args(namespaces, **extra))
    assert result["failed"]
    assert named in result["msg"] and "delete the service (state=absent)" in result["msg"]
    assert result["service"]["id"] == service["id"]
    assert aws.count("UpdateService") == 0


def test_absent(run_module, service, namespaces, aws):
    gone = {"name": "webserver", "namespace_id": namespaces[0], "state": "absent"}
    checked = run_module(cloudmap_service, gone, check_mode=True)
    assert checked["changed"] and checked["diff"] == {"before": service, "after": {}}
    assert aws.count("DeleteService") == 0
    result = run_module(cloudmap_service, gone)
    assert result["changed"] and result["service"] == {}
    assert aws.client("servicediscovery").list_services()["Services"] == []
    assert not run_module(cloudmap_service, gone)["changed"]


def test_same_name_in_another_namespace_is_another_service(run_module, service, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces, namespace_id=namespaces[1]))
    assert result["changed"] and result["service"]["id"] != service["id"]
    assert result["service"]["namespace_id"] == namespaces[1]


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("ListServices", "Failed to list the services of namespace ns-"),
        ("GetService", "Failed to read service srv-"),
        ("UpdateService", "Failed to update service srv-"),
        ("TagResource", "Failed to tag arn:aws:servicediscovery:"),
    ],
)
def test_aws_errors(run_module, service, namespaces, aws, operation, message):
    aws.fail(operation, "AccessDeniedException")
    result = run_module(cloudmap_service, args(namespaces, description="x", tags={"New": "1"}))
    assert result["failed"] and result["msg"].startswith(message)
    assert result["error"]["code"] == "AccessDeniedException"


def test_create_and_delete_errors(run_module, namespaces, aws):
    aws.fail("CreateService", "NamespaceNotFound")
    result = run_module(cloudmap_service, args(namespaces))
    assert result["failed"] and result["msg"].startswith("Failed to create service webserver")
    aws.rules.clear()
    run_module(cloudmap_service, args(namespaces))
    aws.fail("DeleteService", "ResourceInUse")
    result = run_module(cloudmap_service, args(namespaces, state="absent"))
    assert result["failed"] and result["msg"].startswith("Failed to delete service srv-")


def test_throttled_create_is_retried(run_module, namespaces, aws):
    aws.fail("CreateService", "ThrottlingException", times=2)
    result = run_module(cloudmap_service, args(namespaces))
    assert result["changed"] and aws.count("CreateService") == 3


def test_bad_record_type_is_an_argument_error(run_module, namespaces, aws):
    result = run_module(cloudmap_service, args(namespaces, dns_records=[{"type": "MX", "ttl": 1}]))
    assert result["failed"] and "MX" in result["msg"]
    assert aws.calls == []


def test_to_result_of_sparse_services():
    service = {"Id": "srv-1", "Arn": "arn", "Name": "n", "DnsConfig": {"NamespaceId": "ns-1"}}
    assert cloudmap_service.to_result(service, {}) == {
        "id": "srv-1",
        "arn": "arn",
        "name": "n",
        "namespace_id": "ns-1",
        "description": "",
        "dns_records": [],
        "routing_policy": None,
        "tags": {},
    }
    assert cloudmap_service.to_result(None, {}) == {}
    assert (
        cloudmap_service.immutable_differences({}, {"routing_policy": "MULTIVALUE", "custom_health_check": False}) == []
    )

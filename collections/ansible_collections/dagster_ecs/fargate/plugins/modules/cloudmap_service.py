#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudmap_service
short_description: Manage an AWS Cloud Map service in a DNS namespace
version_added: 0.1.0
description:
  - Creates, converges or deletes a Cloud Map service, the registry an ECS service points its
    C(serviceRegistries) at so that its tasks are found by DNS (C(<service>.<namespace>)).
  - "Fills a gap: neither amazon.aws nor community.aws has a Cloud Map module."
  - The description and the DNS records (types and TTL) are converged in place. The routing policy and the
    custom health check cannot be changed by Cloud Map; when they differ the module fails and names the
    difference (delete the service to change them).
  - Supports check mode and diff mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  name:
    description: Service name, the first label of its DNS name.
    type: str
    required: true
  namespace_id:
    description: Id of the namespace (C(ns-...)).
    type: str
    required: true
  description:
    description: Description of the service.
    type: str
    default: ""
  dns_records:
    description: DNS records Cloud Map creates for each registered instance.
    type: list
    elements: dict
    default: [{type: A, ttl: 10}]
    suboptions:
      type:
        description: Record type.
        type: str
        choices: [A, AAAA, SRV, CNAME]
        required: true
      ttl:
        description: TTL in seconds.
        type: int
        required: true
  routing_policy:
    description: How DNS answers when several instances are registered.
    type: str
    choices: [MULTIVALUE, WEIGHTED]
    default: MULTIVALUE
  custom_health_check:
    description:
      - Use a custom health check, whose status ECS reports from its own task health checks (recommended for ECS).
    type: bool
    default: true
  state:
    description: Whether the service exists. Deleting fails while instances are still registered.
    type: str
    choices: [present, absent]
    default: present

  wait_timeout:
    description: Seconds to wait for Cloud Map's asynchronous update operation.
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Register the Dagster webserver as webserver.dagster-ecs.local
  dagster_ecs.fargate.cloudmap_service:
    name: webserver
    namespace_id: "{{ namespace.namespace.id }}"
    dns_records:
      - type: A
        ttl: 10
    tags:
      Project: dagster-ecs
"""

RETURN = r"""
service:
  description: The service (empty when absent).
  returned: always
  type: dict
  contains:
    id:
      description: Service id.
      type: str
      sample: srv-abcdefgh
    arn:
      description: Service ARN, what an ECS service's C(serviceRegistries[].registryArn) takes.
      type: str
    name:
      description: Name.
      type: str
    namespace_id:
      description: Namespace id.
      type: str
    description:
      description: Description.
      type: str
    dns_records:
      description: DNS records as C([{type, ttl}]).
      type: list
      elements: dict
    routing_policy:
      description: Routing policy.
      type: str
    tags:
      description: Tags as a dict.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.cloudmap import CloudMap
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import TAG_ARGS, Changes, camel_tags


def records(service):
    dns = service.get("DnsConfig") or {}
    return [{"type": r["Type"], "ttl": int(r["TTL"])} for r in dns.get("DnsRecords", [])]


def to_result(service, tags):
    if not service:
        return {}
    return {
        "id": service["Id"],
        "arn": service["Arn"],
        "name": service["Name"],
        "namespace_id": service.get("NamespaceId") or (service.get("DnsConfig") or {}).get("NamespaceId"),
        "description": service.get("Description") or "",
        "dns_records": records(service),
        "routing_policy": (service.get("DnsConfig") or {}).get("RoutingPolicy"),
        "tags": tags,
    }


def find(module, cm):
    params = module.params
    summaries = cm.paginate(
        f"list the services of namespace {params['namespace_id']}",
        "list_services",
        "Services",
        Filters=[{"Name": "NAMESPACE_ID", "Values": [params["namespace_id"]], "Condition": "EQ"}],
    )
    for summary in summaries:
        if summary["Name"] == params["name"]:
            return cm.call(f"read service {summary['Id']}", "get_service", Id=summary["Id"])["Service"]
    return None


def immutable_differences(service, params):
    found = []
    policy = (service.get("DnsConfig") or {}).get("RoutingPolicy")
    if policy and policy != params["routing_policy"]:
        found.append(f"routing_policy ({policy} -> {params['routing_policy']})")
    has_custom = bool(service.get("HealthCheckCustomConfig"))
    if has_custom != params["custom_health_check"]:
        found.append(f"custom_health_check ({has_custom} -> {params['custom_health_check']})")
    return found


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            namespace_id=dict(type="str", required=True),
            description=dict(type="str", default=""),
            dns_records=dict(
                type="list",
                elements="dict",
                default=[{"type": "A", "ttl": 10}],
                options=dict(
                    type=dict(type="str", choices=["A", "AAAA", "SRV", "CNAME"], required=True),
                    ttl=dict(type="int", required=True),
                ),
            ),
            routing_policy=dict(type="str", choices=["MULTIVALUE", "WEIGHTED"], default="MULTIVALUE"),
            custom_health_check=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **TAG_ARGS,
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    params = module.params
    wanted_records = [{"type": r["type"], "ttl": r["ttl"]} for r in params["dns_records"]]
    cm = CloudMap(module)
    service = find(module, cm)

    if params["state"] == "absent":
        if not service:
            module.exit_json(changed=False, service={})
        before = to_result(service, cm.tags(service["Arn"]))
        if not module.check_mode:
            cm.call(f"delete service {service['Id']}", "delete_service", Id=service["Id"])
        module.exit_json(changed=True, service={}, diff={"before": before, "after": {}})

    if not service:
        planned = {
            "name": params["name"],
            "namespace_id": params["namespace_id"],
            "description": params["description"],
            "dns_records": wanted_records,
            "routing_policy": params["routing_policy"],
            "tags": params["tags"] or {},
        }
        if module.check_mode:
            module.exit_json(changed=True, service={}, diff={"before": {}, "after": planned})
        kwargs = {
            "Name": params["name"],
            "NamespaceId": params["namespace_id"],
            "CreatorRequestId": cm.request_id(),
            "Description": params["description"],
            "DnsConfig": {
                "RoutingPolicy": params["routing_policy"],
                "DnsRecords": [{"Type": r["type"], "TTL": r["ttl"]} for r in wanted_records],
            },
        }
        if params["custom_health_check"]:
            kwargs["HealthCheckCustomConfig"] = {"FailureThreshold": 1}
        if params["tags"]:
            kwargs["Tags"] = camel_tags(params["tags"])
        service = cm.call(f"create service {params['name']}", "create_service", **kwargs)["Service"]
        module.exit_json(
            changed=True, service=to_result(service, cm.tags(service["Arn"])), diff={"before": {}, "after": planned}
        )

    blocked = immutable_differences(service, params)
    if blocked:
        module.fail_json(
            msg=f"Cloud Map service {service['Id']} ({params['name']}) differs in {', '.join(blocked)}, "
            "which cannot be "
            "changed in place; delete the service (state=absent) and create it again",
            service=to_result(service, cm.tags(service["Arn"])),
        )

    changes = Changes()
    current = {"description": service.get("Description") or "", "dns_records": records(service)}
    wanted = {"description": params["description"], "dns_records": wanted_records}
    if changes.add(current != wanted, {"before": current, "after": wanted}) and not module.check_mode:
        operation = cm.call(
            f"update service {service['Id']}",
            "update_service",
            Id=service["Id"],
            Service={
                "Description": params["description"],
                "DnsConfig": {"DnsRecords": [{"Type": r["type"], "TTL": r["ttl"]} for r in wanted_records]},
            },
        )
        cm.wait_operation(operation["OperationId"], params["wait_timeout"])
    changes.add(*cm.converge_tags(service["Arn"], params["tags"], params["purge_tags"]))
    if changes.changed and not module.check_mode:
        service = cm.call(f"read service {service['Id']}", "get_service", Id=service["Id"])["Service"]
    module.exit_json(changed=changes.changed, service=to_result(service, cm.tags(service["Arn"])), diff=changes.diff)


if __name__ == "__main__":
    main()

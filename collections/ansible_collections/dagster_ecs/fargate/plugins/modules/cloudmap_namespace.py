#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudmap_namespace
short_description: Manage an AWS Cloud Map private DNS namespace
version_added: 0.1.0
description:
  - Creates, converges or deletes a Cloud Map (service discovery) private DNS namespace, the name space ECS
    services register their tasks in so that they find each other by DNS inside a VPC.
  - "Fills a gap: neither amazon.aws nor community.aws has a Cloud Map module."
  - Cloud Map creates and deletes namespaces asynchronously; the module waits for the operation to finish.
  - The description and tags are converged; the name and VPC identify the namespace.
  - Supports check mode and diff mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  name:
    description: DNS name of the namespace, for example V(dagster-ecs.local).
    type: str
    required: true
  vpc_id:
    description:
      - VPC the namespace's private hosted zone is associated with. Required to create it. When several private
        namespaces share O(name), the one in this VPC is managed.
    type: str
  description:
    description: Description of the namespace.
    type: str
    default: ""
  state:
    description: Whether the namespace exists. Deleting fails while it still has services.
    type: str
    choices: [present, absent]
    default: present

  wait_timeout:
    description: Seconds to wait for Cloud Map's asynchronous create, update and delete operations.
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Private DNS name space for the Dagster services
  dagster_ecs.fargate.cloudmap_namespace:
    name: dagster-ecs.local
    vpc_id: vpc-0123456789abcdef0
    description: Dagster services
    tags:
      Project: dagster-ecs
  register: namespace

- name: Delete it (after its services)
  dagster_ecs.fargate.cloudmap_namespace:
    name: dagster-ecs.local
    vpc_id: vpc-0123456789abcdef0
    state: absent
"""

RETURN = r"""
namespace:
  description: The namespace (empty when absent).
  returned: always
  type: dict
  contains:
    id:
      description: Namespace id.
      type: str
      sample: ns-abcdefghijklmnop
    arn:
      description: Namespace ARN.
      type: str
    name:
      description: DNS name.
      type: str
    description:
      description: Description.
      type: str
    type:
      description: C(DNS_PRIVATE).
      type: str
    hosted_zone_id:
      description: Route 53 private hosted zone created for the namespace.
      type: str
    tags:
      description: Tags as a dict.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.cloudmap import CloudMap
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    BOTO_ERRORS,
    TAG_ARGS,
    Changes,
    camel_tags,
    client,
)


def to_result(namespace, tags):
    if not namespace:
        return {}
    dns = (namespace.get("Properties") or {}).get("DnsProperties") or {}
    return {
        "id": namespace["Id"],
        "arn": namespace["Arn"],
        "name": namespace["Name"],
        "description": namespace.get("Description") or "",
        "type": namespace.get("Type"),
        "hosted_zone_id": dns.get("HostedZoneId"),
        "tags": tags,
    }


def in_vpc(module, namespace, vpc_id):
    """Whether the namespace's private hosted zone is associated with ``vpc_id``."""
    zone_id = ((namespace.get("Properties") or {}).get("DnsProperties") or {}).get("HostedZoneId")
    if not zone_id:
        return False
    try:
        zone = client(module, "route53").get_hosted_zone(aws_retry=True, Id=zone_id)
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to read hosted zone {zone_id} of namespace {namespace['Id']}")
    return any(vpc.get("VPCId") == vpc_id for vpc in zone.get("VPCs", []))


def find(module, cm):
    name, vpc_id = module.params["name"], module.params["vpc_id"]
    summaries = cm.paginate(
        f"list Cloud Map namespaces named {name}",
        "list_namespaces",
        "Namespaces",
        Filters=[
            {"Name": "TYPE", "Values": ["DNS_PRIVATE"], "Condition": "EQ"},
            {"Name": "NAME", "Values": [name], "Condition": "EQ"},
        ],
    )
    matches = [ns for ns in summaries if ns["Name"] == name and ns.get("Type") == "DNS_PRIVATE"]
    namespaces = [cm.call(f"read namespace {ns['Id']}", "get_namespace", Id=ns["Id"])["Namespace"] for ns in matches]
    if vpc_id:
        # Private namespace names are unique per VPC only: another VPC's namespace of the same name is
        # never ours (taking it over would retag it, add our services to it, and tear it down later).
        namespaces = [ns for ns in namespaces if in_vpc(module, ns, vpc_id)]
    elif len(namespaces) > 1:
        module.fail_json(msg=f"{len(namespaces)} private namespaces are named {name}; set vpc_id to choose one")
    return namespaces[0] if namespaces else None


def create(module, cm):
    params = module.params
    if not params["vpc_id"]:
        module.fail_json(msg=f"vpc_id is required to create namespace {params['name']}")
    kwargs = {
        "Name": params["name"],
        "Vpc": params["vpc_id"],
        "CreatorRequestId": cm.request_id(),
        "Description": params["description"],
    }
    if params["tags"]:
        kwargs["Tags"] = camel_tags(params["tags"])
    operation = cm.call(f"create namespace {params['name']}", "create_private_dns_namespace", **kwargs)
    targets = cm.wait_operation(operation["OperationId"], params["wait_timeout"])
    namespace_id = targets["NAMESPACE"]
    return cm.call(f"read namespace {namespace_id}", "get_namespace", Id=namespace_id)["Namespace"]


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            vpc_id=dict(type="str"),
            description=dict(type="str", default=""),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **TAG_ARGS,
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    params = module.params
    cm = CloudMap(module)
    namespace = find(module, cm)

    if params["state"] == "absent":
        if not namespace:
            module.exit_json(changed=False, namespace={})
        before = to_result(namespace, cm.tags(namespace["Arn"]))
        if not module.check_mode:
            operation = cm.call(f"delete namespace {namespace['Id']}", "delete_namespace", Id=namespace["Id"])
            cm.wait_operation(operation["OperationId"], params["wait_timeout"])
        module.exit_json(changed=True, namespace={}, diff={"before": before, "after": {}})

    if not namespace:
        planned = {"name": params["name"], "description": params["description"], "tags": params["tags"] or {}}
        if module.check_mode:
            module.exit_json(changed=True, namespace={}, diff={"before": {}, "after": planned})
        namespace = create(module, cm)
        module.exit_json(
            changed=True,
            namespace=to_result(namespace, cm.tags(namespace["Arn"])),
            diff={"before": {}, "after": planned},
        )

    changes = Changes()
    current_description = namespace.get("Description") or ""
    if (
        changes.add(
            current_description != params["description"],
            {"before": {"description": current_description}, "after": {"description": params["description"]}},
        )
        and not module.check_mode
    ):
        operation = cm.call(
            f"update namespace {namespace['Id']}",
            "update_private_dns_namespace",
            Id=namespace["Id"],
            UpdaterRequestId=cm.request_id(),
            Namespace={"Description": params["description"]},
        )
        cm.wait_operation(operation["OperationId"], params["wait_timeout"])
    changes.add(*cm.converge_tags(namespace["Arn"], params["tags"], params["purge_tags"]))
    if changes.changed and not module.check_mode:
        namespace = cm.call(f"read namespace {namespace['Id']}", "get_namespace", Id=namespace["Id"])["Namespace"]
    module.exit_json(
        changed=changes.changed, namespace=to_result(namespace, cm.tags(namespace["Arn"])), diff=changes.diff
    )


if __name__ == "__main__":
    main()

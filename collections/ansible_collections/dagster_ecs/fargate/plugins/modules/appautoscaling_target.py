#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: appautoscaling_target
short_description: Manage an Application Auto Scaling scalable target
version_added: 0.1.0
description:
  - Registers a scalable target (for example an ECS service's desired count) with its capacity bounds and tags, or
    deregisters it, which also deletes its scaling policies and scheduled actions.
  - Fills a gap in community.aws. M(community.aws.application_autoscaling_policy) registers a target as a side effect
    of creating a policy, but cannot tag it and never deregisters it, so deleting the policies leaves the target behind.
  - Supports check mode and diff mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  service_namespace:
    description: Namespace of the scaled service.
    type: str
    default: ecs
  resource_id:
    description: Resource identifier, for an ECS service C(service/<cluster>/<service>).
    type: str
    required: true
  scalable_dimension:
    description: Scalable dimension.
    type: str
    default: ecs:service:DesiredCount
  min_capacity:
    description: Lower bound. Required to register a target.
    type: int
  max_capacity:
    description: Upper bound. Required to register a target.
    type: int
  state:
    description: V(absent) deregisters the target and with it all its policies.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Let the webserver service scale between 1 and 2 tasks
  dagster_ecs.fargate.appautoscaling_target:
    resource_id: service/dagster-ecs/dagster-ecs-webserver
    min_capacity: 1
    max_capacity: 2
    tags:
      Project: dagster-ecs

- name: Stop scaling it (its policies go too)
  dagster_ecs.fargate.appautoscaling_target:
    resource_id: service/dagster-ecs/dagster-ecs-webserver
    state: absent
"""

RETURN = r"""
scalable_target:
  description: The target (empty when absent).
  returned: always
  type: dict
  contains:
    arn:
      description: ScalableTargetARN.
      type: str
    resource_id:
      description: Resource id.
      type: str
    min_capacity:
      description: Lower bound.
      type: int
    max_capacity:
      description: Upper bound.
      type: int
    tags:
      description: Tags as a dict.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    TAG_ARGS,
    Changes,
    apply_tags,
    call,
    client,
)


class Targets:
    def __init__(self, module):
        self.module = module
        self.aas = client(module, "application-autoscaling")
        self.key = {
            "ServiceNamespace": module.params["service_namespace"],
            "ResourceId": module.params["resource_id"],
            "ScalableDimension": module.params["scalable_dimension"],
        }

    def call(self, what, method, **kwargs):
        return call(self.module, self.aas, f"{what} scalable target {self.key['ResourceId']}", method, **kwargs)

    def get(self):
        found = self.call(
            "describe",
            "describe_scalable_targets",
            ServiceNamespace=self.key["ServiceNamespace"],
            ResourceIds=[self.key["ResourceId"]],
            ScalableDimension=self.key["ScalableDimension"],
        )
        for target in found.get("ScalableTargets", []):
            if target["ResourceId"] == self.key["ResourceId"]:
                return target
        return None

    def tags(self, target):
        if not target.get("ScalableTargetARN"):
            return {}
        return self.call("list tags of", "list_tags_for_resource", ResourceARN=target["ScalableTargetARN"]).get(
            "Tags", {}
        )


def to_result(target, tags):
    if not target:
        return {}
    return {
        "arn": target.get("ScalableTargetARN"),
        "resource_id": target["ResourceId"],
        "service_namespace": target["ServiceNamespace"],
        "scalable_dimension": target["ScalableDimension"],
        "min_capacity": target["MinCapacity"],
        "max_capacity": target["MaxCapacity"],
        "tags": tags,
    }


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            service_namespace=dict(type="str", default="ecs"),
            resource_id=dict(type="str", required=True),
            scalable_dimension=dict(type="str", default="ecs:service:DesiredCount"),
            min_capacity=dict(type="int"),
            max_capacity=dict(type="int"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **TAG_ARGS,
        ),
        required_if=[("state", "present", ["min_capacity", "max_capacity"])],
        supports_check_mode=True,
    )
    params = module.params
    targets = Targets(module)
    current = targets.get()

    if params["state"] == "absent":
        if not current:
            module.exit_json(changed=False, scalable_target={})
        before = to_result(current, targets.tags(current))
        if not module.check_mode:
            targets.call("deregister", "deregister_scalable_target", **targets.key)
        module.exit_json(changed=True, scalable_target={}, diff={"before": before, "after": {}})

    if params["min_capacity"] < 0 or params["min_capacity"] > params["max_capacity"]:
        module.fail_json(
            msg=f"min_capacity ({params['min_capacity']}) must be >= 0 and <= max_capacity ({params['max_capacity']})"
        )
    wanted = {"min_capacity": params["min_capacity"], "max_capacity": params["max_capacity"]}
    have = {"min_capacity": current["MinCapacity"], "max_capacity": current["MaxCapacity"]} if current else {}
    changes = Changes()
    if changes.add(have != wanted, {"before": have, "after": wanted}) and not module.check_mode:
        kwargs = dict(targets.key, MinCapacity=params["min_capacity"], MaxCapacity=params["max_capacity"])
        if not current and params["tags"]:
            kwargs["Tags"] = params["tags"]
        targets.call("register", "register_scalable_target", **kwargs)
        current = targets.get()
    if current:
        arn = current["ScalableTargetARN"]
        changes.add(
            *apply_tags(
                module,
                targets.tags(current),
                params["tags"],
                params["purge_tags"],
                lambda tags: targets.call("tag", "tag_resource", ResourceARN=arn, Tags=tags),
                lambda keys: targets.call("untag", "untag_resource", ResourceARN=arn, TagKeys=keys),
            )
        )
    elif params["tags"]:
        changes.diff["after"]["tags"] = params["tags"]
    module.exit_json(
        changed=changes.changed,
        scalable_target=to_result(current, targets.tags(current)) if current else {},
        diff=changes.diff,
    )


if __name__ == "__main__":
    main()

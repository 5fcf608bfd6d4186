#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_task_definition
short_description: Register an ECS task definition revision only when the definition changed
version_added: 0.1.0
description:
  - Compares the desired task definition with the latest C(ACTIVE) revision of O(family) and registers a new revision
    only if they differ in any field (containers, volumes, roles, network mode, CPU, memory, runtime platform).
  - Fills a gap in M(community.aws.ecs_taskdefinition) (10.0.0), which decides whether to register by comparing
    containers, volumes, task role and launch type only (a change of O(cpu), O(memory), O(runtime_platform) or
    O(execution_role_arn) registers nothing), reuses the B(oldest) matching revision (so changing a size back and forth
    can deploy a stale revision), matches families by prefix, and describes every revision on every run.
  - The comparison normalises what ECS fills in on registration (C(essential=true), C(cpu=0), C(protocol=tcp),
    C(hostPort) in awsvpc mode, empty lists) and ignores the order of C(environment), C(secrets) and containers.
  - Tags are converged on the current revision without registering a new one.
  - O(state=absent) deregisters every C(ACTIVE) revision of the family.
  - Supports check mode and diff mode; the diff shows the fields that differ.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  family:
    description: Task definition family.
    type: str
    required: true
  state:
    description: V(present) registers a revision when needed; V(absent) deregisters all active revisions.
    type: str
    choices: [present, absent]
    default: present
  containers:
    description:
      - Container definitions in the ECS API's format (camelCase keys, as for C(RegisterTaskDefinition)).
      - Required with O(state=present).
    type: list
    elements: dict
  volumes:
    description: Volumes in the ECS API's format.
    type: list
    elements: dict
    default: []
  task_role_arn:
    description: Role the containers run as.
    type: str
  execution_role_arn:
    description: Role ECS uses to pull the image, write logs and read secrets.
    type: str
  network_mode:
    description: Network mode; Fargate requires V(awsvpc).
    type: str
    choices: [awsvpc, bridge, host, none]
    default: awsvpc
  requires_compatibilities:
    description: Launch types the definition must be valid for.
    type: list
    elements: str
    default: [FARGATE]
  cpu:
    description: Task CPU units, for example V(256).
    type: str
  memory:
    description: Task memory in MiB, for example V(512).
    type: str
  runtime_platform:
    description: CPU architecture and OS family.
    type: dict
    suboptions:
      cpu_architecture:
        description: V(ARM64) or V(X86_64).
        type: str
        choices: [ARM64, X86_64]
        default: X86_64
      operating_system_family:
        description: Operating system family.
        type: str
        default: LINUX
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Webserver task definition (a new revision only when something changed)
  dagster_ecs.fargate.ecs_task_definition:
    family: dagster-ecs-webserver
    cpu: "256"
    memory: "512"
    runtime_platform:
      cpu_architecture: ARM64
    execution_role_arn: arn:aws:iam::123456789012:role/dagster-ecs-task-execution
    task_role_arn: arn:aws:iam::123456789012:role/dagster-ecs-task
    containers:
      - name: webserver
        image: 123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/dagster-ecs:0.1.0
        command: [webserver]
        portMappings:
          - containerPort: 8080
    tags:
      Project: dagster-ecs
  register: webserver_td

- name: Deregister every revision of the family
  dagster_ecs.fargate.ecs_task_definition:
    family: dagster-ecs-webserver
    state: absent
"""

RETURN = r"""
taskdefinition:
  description: The current revision as DescribeTaskDefinition returns it (empty after O(state=absent)).
  returned: always
  type: dict
  sample: {"family": "dagster-ecs-webserver", "revision": 3, "taskDefinitionArn": "arn:aws:ecs:...:3"}
revision:
  description: Revision number of the current revision.
  returned: when state=present and a revision exists
  type: int
arn:
  description: ARN of the current revision.
  returned: when state=present and a revision exists
  type: str
differences:
  description: Fields in which the desired definition differed from the previous revision.
  returned: always
  type: list
  elements: str
  sample: ["cpu", "containerDefinitions[webserver]"]
deregistered:
  description: ARNs deregistered with O(state=absent).
  returned: when state=absent
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    BOTO_ERRORS,
    TAG_ARGS,
    apply_tags,
    call,
    client,
    paginate,
)
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.taskdef import canonical, differences


def lower_tags(tags):
    return [{"key": k, "value": v} for k, v in (tags or {}).items()]


def desired_definition(params):
    definition = {
        "family": params["family"],
        "containerDefinitions": params["containers"],
        "volumes": params["volumes"] or [],
        "networkMode": params["network_mode"],
        "requiresCompatibilities": params["requires_compatibilities"],
    }
    for key, param in (
        ("taskRoleArn", "task_role_arn"),
        ("executionRoleArn", "execution_role_arn"),
        ("cpu", "cpu"),
        ("memory", "memory"),
    ):
        if params[param]:
            definition[key] = params[param]
    platform = params["runtime_platform"]
    if platform:
        definition["runtimePlatform"] = {
            "cpuArchitecture": platform["cpu_architecture"],
            "operatingSystemFamily": platform["operating_system_family"],
        }
    return definition


class TaskDefinitions:
    def __init__(self, module):
        self.module = module
        self.ecs = client(module, "ecs")

    def latest(self, family):
        """The latest ACTIVE revision and its tags, or (None, {})."""
        try:
            found = self.ecs.describe_task_definition(aws_retry=True, taskDefinition=family, include=["TAGS"])
        except is_boto3_error_code("ClientException"):
            return None, {}
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe task definition family {family}")
        definition = found["taskDefinition"]
        if definition.get("status") != "ACTIVE":
            return None, {}
        return definition, boto3_tag_list_to_ansible_dict(found.get("tags", []), "key", "value")

    def active_arns(self, family):
        try:
            pages = paginate(self.ecs, "list_task_definitions", familyPrefix=family, status="ACTIVE")
            arns = pages.get("taskDefinitionArns", [])
        except BOTO_ERRORS as e:
            self.module.fail_json_aws(e, msg=f"Failed to list task definitions of {family}")
        # familyPrefix is a prefix match: keep this family only.
        return [arn for arn in arns if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]

    def register(self, definition, tags):
        kwargs = dict(definition)
        if tags:
            kwargs["tags"] = lower_tags(tags)
        what = f"register task definition {definition['family']}"
        return call(self.module, self.ecs, what, "register_task_definition", **kwargs)["taskDefinition"]

    def deregister(self, arn):
        call(self.module, self.ecs, f"deregister {arn}", "deregister_task_definition", taskDefinition=arn)

    def tag(self, arn, tags):
        call(self.module, self.ecs, f"tag {arn}", "tag_resource", resourceArn=arn, tags=lower_tags(tags))

    def untag(self, arn, keys):
        call(self.module, self.ecs, f"untag {arn}", "untag_resource", resourceArn=arn, tagKeys=keys)


def result(definition, diffs, **extra):
    out = {"taskdefinition": definition or {}, "differences": diffs}
    if definition:
        out["revision"] = definition["revision"]
        out["arn"] = definition["taskDefinitionArn"]
    out.update(extra)
    return out


def ensure_absent(module, tds):
    family = module.params["family"]
    arns = tds.active_arns(family)
    if arns and not module.check_mode:
        for arn in arns:
            tds.deregister(arn)
    module.exit_json(
        changed=bool(arns),
        deregistered=arns,
        diff={"before": {"active_revisions": arns}, "after": {"active_revisions": []}},
        **result(None, []),
    )


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            family=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            containers=dict(type="list", elements="dict"),
            volumes=dict(type="list", elements="dict", default=[]),
            task_role_arn=dict(type="str"),
            execution_role_arn=dict(type="str"),
            network_mode=dict(type="str", choices=["awsvpc", "bridge", "host", "none"], default="awsvpc"),
            requires_compatibilities=dict(type="list", elements="str", default=["FARGATE"]),
            cpu=dict(type="str"),
            memory=dict(type="str"),
            runtime_platform=dict(
                type="dict",
                options=dict(
                    cpu_architecture=dict(type="str", choices=["ARM64", "X86_64"], default="X86_64"),
                    operating_system_family=dict(type="str", default="LINUX"),
                ),
            ),
            **TAG_ARGS,
        ),
        required_if=[("state", "present", ["containers"])],
        supports_check_mode=True,
    )
    params = module.params
    tds = TaskDefinitions(module)
    if params["state"] == "absent":
        ensure_absent(module, tds)

    for container in params["containers"]:
        if not container.get("name") or not container.get("image"):
            module.fail_json(msg=f"every container needs a name and an image, got {container}")

    desired = desired_definition(params)
    current, current_tags = tds.latest(params["family"])
    diffs = differences(desired, current) if current else ["new family"]

    if not diffs:
        changed, tag_diff = apply_tags(
            module,
            current_tags,
            params["tags"],
            params["purge_tags"],
            lambda tags: tds.tag(current["taskDefinitionArn"], tags),
            lambda keys: tds.untag(current["taskDefinitionArn"], keys),
        )
        module.exit_json(changed=changed, diff=tag_diff, **result(current, []))

    diff = {
        "before": canonical(current) if current else {},
        "after": canonical(desired),
        "before_header": f"{params['family']}:{current['revision']}" if current else "(none)",
        "after_header": f"{params['family']}:(new revision)",
    }
    if module.check_mode:
        module.exit_json(changed=True, diff=diff, **result(current, diffs))
    registered = tds.register(desired, params["tags"])
    module.exit_json(changed=True, diff=diff, **result(registered, diffs))


if __name__ == "__main__":
    main()

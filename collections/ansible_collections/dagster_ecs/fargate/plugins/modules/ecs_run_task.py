#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_run_task
short_description: Run a one-off ECS task to completion and fail unless its container exits 0
version_added: 0.1.0
description:
  - Starts one task of O(task_definition) with O(command) as the override of O(container)'s command (RunTask),
    waits until it is C(STOPPED) and reports the container's exit code. A non-zero exit code, a task that stopped
    without one (it could not start) or a timeout fails the module with the task's stopped reason and the last
    lines of its awslogs stream.
  - Made for steps a deployment runs once between registering a task definition and rolling the services onto
    it, such as a database schema migration.
  - Describe before acting. With O(started_by), a task of the same task definition that is still running and
    was started by the same O(started_by) (a play that was interrupted) is waited for instead of starting a
    second one.
  - In check mode nothing is started; the result says the task would run (C(changed=true)).
  - Fills a gap. M(community.aws.ecs_task) starts a task but neither waits for it to stop nor reports its exit
    code or output.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  cluster:
    description: Cluster name or ARN.
    type: str
    required: true
  task_definition:
    description: Task definition to run, C(family:revision) or its ARN.
    type: str
    required: true
  container:
    description: The container whose command O(command) replaces and whose exit code decides the result.
    type: str
    required: true
  command:
    description: The container's command for this task (the container's own when empty).
    type: list
    elements: str
    default: []
  launch_type:
    description: Launch type.
    type: str
    choices: [FARGATE, EC2]
    default: FARGATE
  platform_version:
    description: Fargate platform version.
    type: str
    default: LATEST
  network_configuration:
    description: The task's network (awsvpc); required by Fargate.
    type: dict
    suboptions:
      subnets:
        description: Subnet IDs.
        type: list
        elements: str
        required: true
      security_groups:
        description: Security group IDs.
        type: list
        elements: str
        default: []
      assign_public_ip:
        description: Give the task's network interface a public IP.
        type: bool
        default: false
  started_by:
    description: The task's C(startedBy) (at most 36 characters); also what an interrupted run is found by.
    type: str
  wait_timeout:
    description: Seconds to wait for the task to stop. On timeout the task is stopped and the module fails.
    type: int
    default: 900
  log_lines:
    description: How many of the last log lines a failure shows (and the result returns).
    type: int
    default: 20
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - O(purge_tags) has no effect; the tags are the new task's (RunTask with tags needs C(ecs:TagResource)).
"""

EXAMPLES = r"""
- name: Migrate Dagster's storage schema with the new image before the services roll
  dagster_ecs.fargate.ecs_run_task:
    cluster: dagster-ecs
    task_definition: "dagster-ecs-run:7"
    container: run
    command: [migrate]
    started_by: dagster-ecs-migrate
    network_configuration:
      subnets: [subnet-0123, subnet-4567]
      security_groups: [sg-0123]
      assign_public_ip: true
    wait_timeout: 900
"""

RETURN = r"""
task_arn:
  description: The task that ran (absent in check mode).
  returned: unless check mode
  type: str
exit_code:
  description: The container's exit code (0 on success).
  returned: unless check mode
  type: int
stopped_reason:
  description: Why ECS stopped the task (C(Essential container in task exited) after a normal exit).
  returned: unless check mode
  type: str
resumed:
  description: Whether a running task of the same O(started_by) and task definition was waited for instead.
  returned: always
  type: bool
log:
  description: The last O(log_lines) lines of the container's awslogs stream.
  returned: unless check mode
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import call, client, wait_until
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.tasklogs import log_tail

POLL_SECONDS = 3  # DescribeTasks allows far more; a Fargate task takes 30-60 s to start


def running_task(module, ecs):
    """A task of the same task definition and startedBy still running (an interrupted play), or None."""
    params = module.params
    if not params["started_by"]:
        return None
    listed = call(
        module,
        ecs,
        f"list the tasks started by {params['started_by']}",
        "list_tasks",
        cluster=params["cluster"],
        startedBy=params["started_by"],
        desiredStatus="RUNNING",
    ).get("taskArns", [])
    if not listed:
        return None
    wanted = definition_arn(module, ecs)
    tasks = describe(module, ecs, listed)
    return next((task for task in tasks if task["taskDefinitionArn"] == wanted), None)


def definition_arn(module, ecs):
    found = call(
        module,
        ecs,
        f"describe task definition {module.params['task_definition']}",
        "describe_task_definition",
        taskDefinition=module.params["task_definition"],
    )
    return found["taskDefinition"]["taskDefinitionArn"]


def describe(module, ecs, arns):
    return call(
        module, ecs, "describe the task", "describe_tasks", cluster=module.params["cluster"], tasks=list(arns)
    ).get("tasks", [])


def run(module, ecs):
    params = module.params
    request = {
        "cluster": params["cluster"],
        "taskDefinition": params["task_definition"],
        "launchType": params["launch_type"],
        "count": 1,
    }
    if params["launch_type"] == "FARGATE":
        request["platformVersion"] = params["platform_version"]
    network = params["network_configuration"]
    if network:
        request["networkConfiguration"] = {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["security_groups"],
                "assignPublicIp": "ENABLED" if network["assign_public_ip"] else "DISABLED",
            }
        }
    if params["command"]:
        request["overrides"] = {"containerOverrides": [{"name": params["container"], "command": params["command"]}]}
    if params["started_by"]:
        request["startedBy"] = params["started_by"]
    if params["tags"]:
        request["tags"] = [{"key": key, "value": value} for key, value in params["tags"].items()]
    answer = call(module, ecs, f"run a task of {params['task_definition']}", "run_task", **request)
    if not answer.get("tasks"):
        reasons = "; ".join(
            f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip()
            for f in answer.get("failures", [])
        )
        module.fail_json(msg=f"ECS started no task of {params['task_definition']}: {reasons or 'no reason given'}")
    return answer["tasks"][0]


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            task_definition=dict(type="str", required=True),
            container=dict(type="str", required=True),
            command=dict(type="list", elements="str", default=[]),
            launch_type=dict(type="str", choices=["FARGATE", "EC2"], default="FARGATE"),
            platform_version=dict(type="str", default="LATEST"),
            network_configuration=dict(
                type="dict",
                options=dict(
                    subnets=dict(type="list", elements="str", required=True),
                    security_groups=dict(type="list", elements="str", default=[]),
                    assign_public_ip=dict(type="bool", default=False),
                ),
            ),
            started_by=dict(type="str"),
            wait_timeout=dict(type="int", default=900),
            log_lines=dict(type="int", default=20),
            tags=dict(type="dict", aliases=["resource_tags"]),
            purge_tags=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["started_by"] and len(params["started_by"]) > 36:
        module.fail_json(msg=f"started_by is at most 36 characters (ECS's limit); got {len(params['started_by'])}")
    ecs = client(module, "ecs")
    what = f"{params['container']} ({' '.join(params['command']) or 'its own command'}) of {params['task_definition']}"
    task = running_task(module, ecs)
    resumed = task is not None
    if module.check_mode:
        module.exit_json(changed=True, resumed=resumed, msg=f"Would run {what} once")
    if task is None:
        task = run(module, ecs)
    arn = task["taskArn"]
    task_id = arn.rsplit("/", 1)[-1]

    def stopped():
        found = describe(module, ecs, [arn])
        return found[0] if found and found[0].get("lastStatus") == "STOPPED" else None

    def stop_it():
        call(
            module,
            ecs,
            f"stop task {task_id}",
            "stop_task",
            cluster=params["cluster"],
            task=arn,
            reason=f"ecs_run_task: not stopped after {params['wait_timeout']}s",
        )
        return f"task {task_id} ({what}) stopped"

    task = wait_until(
        module,
        stopped,
        params["wait_timeout"],
        delay=POLL_SECONDS,
        what=f"task {task_id} ({what}) to stop",
        on_timeout=stop_it,
    )
    container = next((c for c in task.get("containers", []) if c.get("name") == params["container"]), {})
    code = container.get("exitCode")
    reason = task.get("stoppedReason", "")
    lines = log_tail(module, ecs, task, lines=params["log_lines"], container_name=params["container"])
    result = dict(changed=True, resumed=resumed, task_arn=arn, exit_code=code, stopped_reason=reason, log=lines)
    if code == 0:
        module.exit_json(**result)
    detail = (
        f"exited {code}" if code is not None else f"stopped without an exit code ({container.get('reason') or reason})"
    )
    shown = "\n".join(lines) if lines else "(no log lines in its awslogs stream)"
    module.fail_json(msg=f"Task {task_id}, {what}, {detail}: {reason}. Its last log lines:\n{shown}", **result)


if __name__ == "__main__":
    main()

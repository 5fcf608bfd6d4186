#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_cluster_drain
short_description: Stop every task of an ECS cluster and wait until none is left running
version_added: 0.1.0
description:
  - Lists the cluster's tasks whose desired status is C(RUNNING) (a run's own task, a one-off task, a service's task
    that outlived its service), stops them (StopTask with O(reason)) and waits until every task of the cluster is
    C(STOPPED), tasks that were already stopping included.
  - ECS refuses to delete a cluster while tasks are active (C(ClusterContainsTasksException)), and deleting a service
    only starts stopping its tasks; run this between deleting the services and deleting the cluster.
  - A cluster that does not exist has nothing to drain (C(changed=false)).
  - In check mode nothing is stopped; the result lists what would be.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  cluster:
    description: Cluster name or ARN.
    type: str
    required: true
  reason:
    description: The C(stoppedReason) the stopped tasks get.
    type: str
    default: Stopped before the cluster is deleted
  wait_timeout:
    description: Seconds to wait for the tasks to stop (a container gets its C(stopTimeout), 30 s by default).
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Stop the runs still running, then delete the cluster
  dagster_ecs.fargate.ecs_cluster_drain:
    cluster: dagster-ecs
    reason: Teardown
"""

RETURN = r"""
stopped:
  description: The tasks this run stopped (in check mode, would stop).
  returned: always
  type: list
  elements: str
waited:
  description: The tasks not yet C(STOPPED) when the module started (those it stopped, those already stopping).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    BOTO_ERRORS,
    call,
    client,
    paginate,
    wait_until,
)

POLL_SECONDS = 3


def active_tasks(module, ecs, cluster):
    """Every task of the cluster that is not STOPPED yet, described; None when the cluster does not exist."""
    arns = []
    try:
        for status in ("RUNNING", "STOPPED"):  # STOPPED desired: stopping, maybe not stopped yet
            arns += paginate(ecs, "list_tasks", cluster=cluster, desiredStatus=status).get("taskArns", [])
    except is_boto3_error_code("ClusterNotFoundException"):
        return None
    except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to list the tasks of cluster {cluster}")
    tasks = []
    for start in range(0, len(arns), 100):
        found = call(
            module,
            ecs,
            f"describe the tasks of cluster {cluster}",
            "describe_tasks",
            cluster=cluster,
            tasks=arns[start : start + 100],
        )
        tasks += [task for task in found.get("tasks", []) if task.get("lastStatus") != "STOPPED"]
    return tasks


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            reason=dict(type="str", default="Stopped before the cluster is deleted"),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    cluster = module.params["cluster"]
    ecs = client(module, "ecs")
    tasks = active_tasks(module, ecs, cluster)
    if not tasks:
        module.exit_json(changed=False, stopped=[], waited=[])
    to_stop = [task["taskArn"] for task in tasks if task.get("desiredStatus") != "STOPPED"]
    waited = [task["taskArn"] for task in tasks]
    if module.check_mode:
        module.exit_json(changed=True, stopped=to_stop, waited=waited)
    for arn in to_stop:
        call(module, ecs, f"stop task {arn}", "stop_task", cluster=cluster, task=arn, reason=module.params["reason"])

    def drained():
        left = active_tasks(module, ecs, cluster)
        return True if not left else None

    wait_until(
        module,
        drained,
        module.params["wait_timeout"],
        delay=POLL_SECONDS,
        what=f"the {len(waited)} task(s) of cluster {cluster} to stop",
    )
    module.exit_json(changed=True, stopped=to_stop, waited=waited)


if __name__ == "__main__":
    main()

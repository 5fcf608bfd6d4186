"""ecs_cluster_drain: stop a cluster's tasks and wait until none is active (the tasks' progress answered)."""

from __future__ import annotations

from ansible_collections.dagster_ecs.fargate.plugins.modules import ecs_cluster_drain

CLUSTER = "dagster-ecs"
RUN = "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/run1"
STOPPING = "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/web1"
DONE = "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/old1"


def task(arn, desired, last):
    return {"taskArn": arn, "desiredStatus": desired, "lastStatus": last}


def cluster(aws, *looks):
    """Each look (ListTasks RUNNING, ListTasks STOPPED, DescribeTasks) sees the next list of tasks; the last stays."""
    seen = {"look": -1}

    def now():
        return looks[min(seen["look"], len(looks) - 1)]

    def listing(original, params):
        if params["desiredStatus"] == "RUNNING":
            seen["look"] += 1
        return {"taskArns": [t["taskArn"] for t in now() if t["desiredStatus"] == params["desiredStatus"]]}

    aws.answer("ListTasks", listing)
    aws.answer(
        "DescribeTasks", lambda original, params: {"tasks": [t for t in now() if t["taskArn"] in params["tasks"]]}
    )


def test_stops_the_running_and_waits_for_the_stopping(run_module, aws, clock):
    first = [task(RUN, "RUNNING", "RUNNING"), task(STOPPING, "STOPPED", "RUNNING"), task(DONE, "STOPPED", "STOPPED")]
    cluster(aws, first, [task(RUN, "STOPPED", "STOPPED"), task(STOPPING, "STOPPED", "STOPPED")])
    aws.answer("StopTask", {"task": task(RUN, "STOPPED", "RUNNING")})
    result = run_module(ecs_cluster_drain, {"cluster": CLUSTER, "reason": "Teardown"})
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["stopped"] == [RUN] and result["waited"] == [RUN, STOPPING]
    assert aws.params("StopTask") == [{"cluster": CLUSTER, "task": RUN, "reason": "Teardown"}]


def test_nothing_active_changes_nothing(run_module, aws):
    cluster(aws, [task(DONE, "STOPPED", "STOPPED")])
    result = run_module(ecs_cluster_drain, {"cluster": CLUSTER})
    assert result["changed"] is False and result["stopped"] == [] and aws.count("StopTask") == 0


def test_a_missing_cluster_has_nothing_to_drain(run_module, aws):
    result = run_module(ecs_cluster_drain, {"cluster": "nope"})
    assert not result.get("failed"), result
    assert result["changed"] is False


def test_check_mode_lists_and_stops_nothing(run_module, aws):
    cluster(aws, [task(RUN, "RUNNING", "RUNNING")])
    result = run_module(ecs_cluster_drain, {"cluster": CLUSTER}, check_mode=True)
    assert result["changed"] is True and result["stopped"] == [RUN]
    assert aws.count("StopTask") == 0


def test_tasks_that_do_not_stop_fail_after_the_timeout(run_module, aws, clock):
    cluster(aws, [task(STOPPING, "STOPPED", "RUNNING")])
    result = run_module(ecs_cluster_drain, {"cluster": CLUSTER, "wait_timeout": 9})
    assert result["failed"]
    assert result["msg"] == f"Timed out after 9s waiting for the 1 task(s) of cluster {CLUSTER} to stop"


def test_a_list_error_fails_naming_the_cluster(run_module, aws):
    aws.fail("ListTasks", "AccessDeniedException")
    result = run_module(ecs_cluster_drain, {"cluster": CLUSTER})
    assert result["failed"] and result["msg"].startswith(f"Failed to list the tasks of cluster {CLUSTER}")

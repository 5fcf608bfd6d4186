"""The task-definition comparison: what ECS fills in is not a difference, what the user changes is.

This file was tests/unit/test_taskdef.py at the repository's root (test_taskdef.py here was another file).
"""

from __future__ import annotations

import copy

from ansible_collections.dagster_ecs.fargate.plugins.module_utils.taskdef import canonical, differences

DESIRED = {
    "family": "app-web",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "executionRoleArn": "arn:aws:iam::1:role/exec",
    "taskRoleArn": "arn:aws:iam::1:role/task",
    "volumes": [{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED"}}],
    "containerDefinitions": [
        {
            "name": "web",
            "image": "repo:1",
            "command": ["webserver"],
            "portMappings": [{"containerPort": 8080}],
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            "secrets": [{"name": "PW", "valueFrom": "arn:secret:pw::"}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
        }
    ],
}


def registered(desired):
    """What DescribeTaskDefinition returns for a registration of ``desired``."""
    td = copy.deepcopy(desired)
    td.update(
        taskDefinitionArn="arn:aws:ecs:r:1:task-definition/app-web:3",
        revision=3,
        status="ACTIVE",
        compatibilities=["EC2", "FARGATE"],
        registeredAt="now",
        placementConstraints=[],
    )
    td["volumes"][0]["efsVolumeConfiguration"]["rootDirectory"] = "/"
    container = td["containerDefinitions"][0]
    container.update(cpu=0, essential=True, volumesFrom=[], systemControls=[])
    container["portMappings"] = [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    container["environment"] = list(reversed(container["environment"]))
    container["mountPoints"][0]["readOnly"] = False
    return td


def test_echoed_defaults_are_not_differences():
    assert differences(DESIRED, registered(DESIRED)) == []


def test_task_size_and_architecture_are_differences():
    for key, value in (("cpu", "512"), ("memory", "1024"), ("executionRoleArn", "arn:aws:iam::1:role/other")):
        changed = dict(DESIRED, **{key: value})
        assert differences(changed, registered(DESIRED)) == [key]
    arm = dict(DESIRED, runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"})
    assert differences(arm, registered(DESIRED)) == ["runtimePlatform"]


def test_container_changes_name_the_container():
    changed = copy.deepcopy(DESIRED)
    changed["containerDefinitions"][0]["image"] = "repo:2"
    assert differences(changed, registered(DESIRED)) == ["containerDefinitions[web]"]
    removed = copy.deepcopy(DESIRED)
    del removed["containerDefinitions"][0]["secrets"]
    assert differences(removed, registered(DESIRED)) == ["containerDefinitions[web]"]


def test_canonical_is_stable_and_numeric_strings():
    assert canonical(dict(DESIRED, cpu=256))["cpu"] == "256"
    assert canonical(DESIRED) == canonical(copy.deepcopy(DESIRED))

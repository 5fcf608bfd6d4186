"""module_utils.taskdef: normalisation details beyond test_taskdef_comparison.py."""

from __future__ import annotations

from ansible_collections.dagster_ecs.fargate.plugins.module_utils.taskdef import (
    canonical,
    canonical_container,
    differences,
)


def test_container_defaults_and_empties_are_dropped():
    container = {
        "name": "c",
        "image": "i",
        "essential": True,
        "cpu": 0,
        "privileged": False,
        "environment": [],
        "linuxParameters": {"capabilities": {}},
        "user": "",
        "memory": 512,
    }
    assert canonical_container(container) == {"name": "c", "image": "i", "memory": 512}


def test_non_default_values_are_kept():
    assert canonical_container({"name": "c", "essential": False, "cpu": 128}) == {
        "name": "c",
        "essential": False,
        "cpu": 128,
    }


def test_keyed_lists_are_sorted():
    container = {
        "name": "c",
        "secrets": [{"name": "B", "valueFrom": "b"}, {"name": "A", "valueFrom": "a"}],
        "ulimits": [{"name": "nproc"}, {"name": "nofile"}],
        "dependsOn": [{"containerName": "z"}, {"containerName": "a"}],
    }
    result = canonical_container(container)
    assert [s["name"] for s in result["secrets"]] == ["A", "B"]
    assert [u["name"] for u in result["ulimits"]] == ["nofile", "nproc"]
    assert [d["containerName"] for d in result["dependsOn"]] == ["a", "z"]


def test_port_mappings():
    ports = [{"containerPort": "9000", "protocol": "udp"}, {"containerPort": 8080}, {"hostPort": "80"}]
    awsvpc = canonical_container({"name": "c", "portMappings": ports})["portMappings"]
    assert awsvpc == [
        {"hostPort": 80, "protocol": "tcp", "containerPort": None},
        {"containerPort": 8080, "protocol": "tcp", "hostPort": 8080},
        {"containerPort": 9000, "protocol": "udp", "hostPort": 9000},
    ]
    bridge = canonical_container({"name": "c", "portMappings": [{"containerPort": 8080}]}, network_mode="bridge")
    assert bridge["portMappings"] == [{"containerPort": 8080, "protocol": "tcp"}]


def test_mount_points_default_read_only_and_sort():
    mounts = [
        {"sourceVolume": "b", "containerPath": "/b"},
        {"sourceVolume": "a", "containerPath": "/a", "readOnly": True},
    ]
    assert canonical_container({"name": "c", "mountPoints": mounts})["mountPoints"] == [
        {"sourceVolume": "a", "containerPath": "/a", "readOnly": True},
        {"sourceVolume": "b", "containerPath": "/b", "readOnly": False},
    ]


def test_task_level_canonical_form():
    definition = {
        "family": "f",
        "networkMode": None,
        "cpu": 256,
        "memory": 512,
        "requiresCompatibilities": ["FARGATE", "EC2"],
        "volumes": [
            {"name": "z", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "/"}},
            {"name": "a", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "/data"}},
            {"name": "m"},
        ],
        "containerDefinitions": [{"name": "web", "portMappings": [{"containerPort": 80}]}, {"name": "app"}],
        "revision": 3,
        "status": "ACTIVE",
    }
    result = canonical(definition)
    assert result["cpu"] == "256" and result["memory"] == "512"
    assert result["requiresCompatibilities"] == ["EC2", "FARGATE"]
    assert [v["name"] for v in result["volumes"]] == ["a", "m", "z"]
    assert result["volumes"][2]["efsVolumeConfiguration"] == {"fileSystemId": "fs-1"}
    assert result["volumes"][0]["efsVolumeConfiguration"]["rootDirectory"] == "/data"
    assert [c["name"] for c in result["containerDefinitions"]] == ["app", "web"]
    # no network mode: bridge, so no hostPort is assumed
    assert result["containerDefinitions"][1]["portMappings"] == [{"containerPort": 80, "protocol": "tcp"}]
    assert "revision" not in result and "status" not in result and "networkMode" not in result


def test_differences_name_added_and_removed_containers():
    base = {"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}]}
    more = {"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}
    assert differences(more, base) == ["containerDefinitions[b]"]
    assert differences(base, more) == ["containerDefinitions[b]"]
    assert differences({"family": "f"}, {"family": "g"}) == ["family"]
    assert differences({"family": "f", "volumes": [{"name": "v"}]}, {"family": "f"}) == ["volumes"]

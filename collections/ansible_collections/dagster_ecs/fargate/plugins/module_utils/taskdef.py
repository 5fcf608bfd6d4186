# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Normalising and comparing ECS task definitions (pure functions, unit tested).

ECS echoes a registered task definition back with defaults filled in (``essential: true``,
``cpu: 0``, empty lists, ``hostPort`` equal to ``containerPort`` in awsvpc mode, ``protocol:
tcp``) and some lists in another order. To decide whether a new revision is needed we bring
the desired and the registered definition to the same canonical form and compare that.
"""

from __future__ import annotations

# Task-level fields that define a revision (what RegisterTaskDefinition takes, minus tags).
TASK_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)

# Container fields whose listed value is what ECS assumes when the field is absent.
CONTAINER_DEFAULTS = {
    "essential": True,
    "cpu": 0,
    "readonlyRootFilesystem": False,
    "privileged": False,
    "interactive": False,
    "pseudoTerminal": False,
    "disableNetworking": False,
}

# Lists whose order ECS does not preserve or that carry no meaning in their order.
KEYED_LISTS = {"environment": "name", "secrets": "name", "ulimits": "name", "dependsOn": "containerName"}


def _is_empty(value):
    return value is None or value == [] or value == {} or value == ""


def _canonical(value):
    """Drop empty values recursively so that 'absent' and 'empty' compare equal."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            item = _canonical(item)
            if not _is_empty(item):
                result[key] = item
        return result
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def canonical_container(container, network_mode="awsvpc"):
    result = _canonical(dict(container))
    for key, default in CONTAINER_DEFAULTS.items():
        if key in result and result[key] == default:
            del result[key]
    for key, sort_key in KEYED_LISTS.items():
        if key in result:
            result[key] = sorted(result[key], key=lambda item, k=sort_key: str(item.get(k)))
    ports = []
    for mapping in result.get("portMappings", []):
        mapping = dict(mapping)
        mapping.setdefault("protocol", "tcp")
        if network_mode == "awsvpc" and "containerPort" in mapping:
            mapping.setdefault("hostPort", mapping["containerPort"])
        mapping["containerPort"] = int(mapping["containerPort"]) if "containerPort" in mapping else None
        if "hostPort" in mapping:
            mapping["hostPort"] = int(mapping["hostPort"])
        ports.append(mapping)
    if ports:
        result["portMappings"] = sorted(ports, key=lambda m: (m.get("containerPort") or 0, m["protocol"]))
    for mount in result.get("mountPoints", []):
        mount.setdefault("readOnly", False)
    if "mountPoints" in result:
        result["mountPoints"] = sorted(result["mountPoints"], key=lambda m: m.get("containerPath", ""))
    return result


def canonical(definition):
    """Canonical form of a task definition (desired or as DescribeTaskDefinition returns it)."""
    network_mode = definition.get("networkMode") or "bridge"
    result = {key: definition.get(key) for key in TASK_FIELDS}
    result = _canonical(result)
    if "cpu" in result:
        result["cpu"] = str(result["cpu"])
    if "memory" in result:
        result["memory"] = str(result["memory"])
    if "requiresCompatibilities" in result:
        result["requiresCompatibilities"] = sorted(result["requiresCompatibilities"])
    result["containerDefinitions"] = sorted(
        (canonical_container(c, network_mode) for c in definition.get("containerDefinitions") or []),
        key=lambda c: c.get("name", ""),
    )
    if "volumes" in result:
        for volume in result["volumes"]:
            efs = volume.get("efsVolumeConfiguration")
            if efs and efs.get("rootDirectory") == "/":  # ECS's default, echoed back
                del efs["rootDirectory"]
        result["volumes"] = sorted(result["volumes"], key=lambda v: v.get("name", ""))
    return result


def differences(desired, current):
    """Top-level fields (and container names) in which two task definitions differ."""
    want, have = canonical(desired), canonical(current)
    found = []
    for key in TASK_FIELDS:
        if key == "containerDefinitions":
            continue
        if want.get(key) != have.get(key):
            found.append(key)
    want_containers = {c.get("name"): c for c in want["containerDefinitions"]}
    have_containers = {c.get("name"): c for c in have["containerDefinitions"]}
    for name in sorted(set(want_containers) | set(have_containers), key=str):
        if want_containers.get(name) != have_containers.get(name):
            found.append(f"containerDefinitions[{name}]")
    return found

"""Bad input fails before any AWS call, naming the variable and what is allowed.

Each case runs ``ansible-playbook site.yml`` with one bad value against an endpoint where nothing
listens. The offline profile would start the emulator there before its first AWS call; that
nothing listens afterwards, and that the account lookup never ran, proves no AWS API was called.
"""

from __future__ import annotations

import json
import socket

import pytest
from conftest import free_port, run_playbook


def subnets(*pairs):
    return [{"cidr": cidr, "az": az} for cidr, az in pairs]


CASES = {
    "fargate pair": ({"ecs_task_cpu": 256, "ecs_task_memory": 4096}, ["ecs_task_memory=4096", "512, 1024, 2048"]),
    "cpu size": ({"ecs_task_cpu": 300}, ["ecs_task_cpu", "256, 512, 1024, 2048, 4096"]),
    "architecture": ({"ecs_cpu_architecture": "SPARC"}, ["ecs_cpu_architecture", "ARM64, X86_64"]),
    "invalid cidr": ({"network_vpc_cidr": "10.0.0.0/33"}, ["network_vpc_cidr", "between /16 and /28"]),
    "host bits": ({"network_vpc_cidr": "10.0.0.1/16"}, ["network_vpc_cidr", "no host bits"]),
    "overlap": (
        {"network_public_subnets": subnets(("10.0.1.0/24", "a"), ("10.0.1.128/25", "b"))},
        ["network_public_subnets", "overlap"],
    ),
    "outside vpc": (
        {"network_public_subnets": subnets(("10.1.1.0/24", "a"), ("10.0.2.0/24", "b"))},
        ["network_public_subnets", "inside network_vpc_cidr"],
    ),
    "one az": ({"network_public_subnets": subnets(("10.0.1.0/24", "a"))}, ["at least two subnets"]),
    "same az twice": (
        {"network_public_subnets": subnets(("10.0.1.0/24", "a"), ("10.0.2.0/24", "a"))},
        ["distinct AZs"],
    ),
    "name too long": (
        {"dagster_ecs_project": "a-project-name-that-is-too-long-x"},
        ["loadbalancer_name", "at most 32", "shorten dagster_ecs_project"],
    ),
    "scaling min > max": ({"autoscaling_min_tasks": 3, "autoscaling_max_tasks": 2}, ["autoscaling_min_tasks (3)"]),
    "missing value": ({"ecs_run_launcher": ""}, ["ecs_run_launcher", "ecs, default"]),
    "rotate what": ({"secrets_rotate": "password"}, ["secrets_rotate", "database, basic_auth or both", "got password"]),
    "short password": ({"secrets_password_length": 8}, ["secrets_password_length", "between 16 and 128"]),
}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_before_any_aws_call(case, tmp_path):
    bad, expected = CASES[case]
    port = free_port()
    extra = {
        "dagster_ecs_aws_endpoint_url": f"http://127.0.0.1:{port}",
        "dagster_ecs_state_dir": str(tmp_path),
        **bad,
    }
    run = run_playbook("site.yml", "-e", json.dumps(extra), timeout=300)
    assert run.returncode != 0, run.output[-3000:]
    assert run.recap["failed"] == 1
    for text in expected:
        assert text in run.output, f"{text!r} not in:\n{run.output[-3000:]}"
    assert "TASK [preflight : Identify the AWS account]" not in run.output
    assert "TASK [offline_endpoint" not in run.output
    assert not listening(port), "an emulator was started: something went past input validation"

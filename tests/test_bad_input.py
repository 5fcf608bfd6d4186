"""Bad input fails before any AWS call, naming the variable and what is allowed.

Each case runs ``ansible-playbook site.yml`` with one bad value against an endpoint where nothing
listens. The offline profile would start the emulator there before its first AWS call; that
nothing listens afterwards, and that the account lookup never ran, proves no AWS API was called.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.parse

import pytest
from support.emulator import OFFLINE_CREDENTIALS
from support.net import free_port
from support.playbook import run_playbook

pytestmark = pytest.mark.integration  # each case runs ansible-playbook


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
    "no dagster pin": (
        {"dagster_ecs_constraints_file": "/etc/hostname"},
        ["ecs_dagster_version=none (no dagster pin in /etc/hostname) is not a Dagster version"],
    ),
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


# --- Plain HTTP on AWS ---------------------------------------------------------------------------------------------
# The production inventory (dagster_ecs_offline false) against a loopback stand-in for STS and IAM: the endpoint is
# overridden as tests/integration/test_site.py does, the credentials are the offline profile's, so nothing goes
# anywhere but 127.0.0.1 (instance metadata is off too).

STS_ANSWERS = {
    "GetCallerIdentity": b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/tester</Arn><UserId>AIDATESTER</UserId>
  <Account>123456789012</Account></GetCallerIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>""",
    "ListAccountAliases": b"""<ListAccountAliasesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListAccountAliasesResult><IsTruncated>false</IsTruncated><AccountAliases/></ListAccountAliasesResult>
  <ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></ListAccountAliasesResponse>""",
}


@pytest.fixture
def fake_sts():
    """STS and IAM answering the preflight's account lookup on 127.0.0.1; ``requests`` lists the actions asked."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            action = urllib.parse.parse_qs(body).get("Action", [""])[0]
            requests.append(action)
            answer = STS_ANSWERS.get(action)
            self.send_response(200 if answer else 400)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer or b"")))
            self.end_headers()
            self.wfile.write(answer or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.requests = requests
    server.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def production(playbook, endpoint, state, *args, **extra):
    extra = {"dagster_ecs_aws_endpoint_url": endpoint, "dagster_ecs_state_dir": str(state), **extra}
    environment = {**OFFLINE_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}
    return run_playbook(playbook, "-e", json.dumps(extra), *args, inventory="inventory/production", env=environment)


@pytest.mark.parametrize("tags", [(), ("--tags", "dags")], ids=["site", "dags only"])
def test_production_without_certificate_fails_before_any_aws_call(tags, fake_sts, tmp_path):
    run = production("site.yml", fake_sts.endpoint, tmp_path, *tags)
    assert run.returncode != 0 and run.recap["failed"] == 1, run.output[-3000:]
    for text in (
        "loadbalancer_certificate_arn is empty",
        "basic-auth password would cross the internet in clear text",
        "aws acm request-certificate",
        "dagster_ecs_allow_plain_http: true",
    ):
        assert text in run.output, f"{text!r} not in:\n{run.output[-3000:]}"
    assert "TASK [preflight : Identify the AWS account]" not in run.output
    assert fake_sts.requests == [], "an AWS API was called before the inputs were validated"


def test_production_without_certificate_passes_the_preflight_only_with_the_opt_out(fake_sts, tmp_path):
    run = production("playbooks/preflight.yml", fake_sts.endpoint, tmp_path, dagster_ecs_allow_plain_http=True)
    assert run.returncode == 0, run.output[-3000:]
    assert "loadbalancer_certificate_arn is empty, so" not in run.output
    assert "dagster_ecs_allow_plain_http is true and loadbalancer_certificate_arn is empty" in run.output
    assert "Deploying dagster-ecs (production) to account 123456789012" in run.output
    assert fake_sts.requests[0] == "GetCallerIdentity"


CERTIFICATE = "arn:aws:acm:ap-southeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"


def test_a_certificate_without_its_domain_name_fails_before_any_aws_call(fake_sts, tmp_path):
    """verify and dags would reach https://<alb>.amazonaws.com, a name the certificate does not cover."""
    run = production("playbooks/preflight.yml", fake_sts.endpoint, tmp_path, loadbalancer_certificate_arn=CERTIFICATE)
    assert run.returncode != 0, run.output[-3000:]
    assert "loadbalancer_domain_name () must be the DNS name the certificate" in run.output
    assert fake_sts.requests == []
    run = production(
        "playbooks/preflight.yml",
        fake_sts.endpoint,
        tmp_path,
        loadbalancer_certificate_arn=CERTIFICATE,
        loadbalancer_domain_name="dagster.example.com",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert fake_sts.requests[0] == "GetCallerIdentity"


def test_teardown_of_a_plain_http_stack_needs_no_opt_out(fake_sts, tmp_path):
    """Deleting sends no credentials: teardown's preflight skips the clear-text check (and goes on to STS)."""
    run = production("playbooks/teardown.yml", fake_sts.endpoint, tmp_path, "--check")
    assert "loadbalancer_certificate_arn is empty, so" not in run.output, run.output[-3000:]
    assert fake_sts.requests[:1] == ["GetCallerIdentity"], run.output[-3000:]

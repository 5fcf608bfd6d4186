#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_health
short_description: Check that a Dagster deployment on ECS is healthy, waiting until it is
version_added: 0.1.0
description:
  - Checks, in one pass, everything that must hold for a Dagster deployment to be usable, and names what does not.
  - With O(cluster) and O(services) set (AWS, or the offline profile's emulated ECS, where the local runtime registers
    its tasks), each ECS service's primary deployment is C(COMPLETED) with as many running
    tasks as desired, and (O(target_group_arn) set) every registered ALB target is healthy.
  - Offline (O(local_status_file) set), also every service of the local ECS runtime has a running task.
  - Both, through O(url), C(/health) answers 200; through Dagster's GraphQL API (with O(username) and O(password)) every
    code location is loaded without error, every required daemon reports healthy, and every asset of
    O(expected_assets) is present.
  - With O(timeout) above 0 (the default) the action plugin repeats the checks, waiting 1, 2, 4... seconds between
    them and at most O(interval), printing what it is waiting for, until all pass or the timeout expires; the
    failure message names what is unhealthy.
  - A service that is not healthy is explained with its restart count and the error its last stopped task ended with (on
    AWS the stopped task's C(stoppedReason), its container's exit code and the last lines of its CloudWatch Logs
    stream; offline the local runtime's record of the task's exit and the last lines of its log).
  - When a service has no running task and its last O(crash_loop_stops) tasks stopped with the same error, the check
    is C(fatal) and the action plugin fails at once with that error instead of waiting out O(timeout).
  - A primary deployment that ECS's circuit breaker FAILED (without rollback) is C(fatal) at once too.
  - With O(task_definitions), a service whose primary deployment runs another revision than the one given is
    C(fatal) at once too, since ECS rolled the new revision back (the deployment circuit breaker, after its tasks
    kept failing) or another deployment replaced it, and ECS will not try that revision again. The check names both
    revisions and why the new one's last task stopped. Without it, a rolled-back deployment would pass as healthy.
  - Follows no redirect, since urllib would resend the credentials to wherever it points; the check names its
    location.
  - Read-only, so it runs the same way in check mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  url:
    description: Base URL of the deployment (the load balancer, or the local runtime's nginx), without a trailing path.
    type: str
    required: true
  username:
    description: Basic-auth user name of the web UI.
    type: str
  password:
    description: Basic-auth password of the web UI.
    type: str
  expected_assets:
    description: Asset keys (C(a/b) for multi-part keys) that must be listed by Dagster.
    type: list
    elements: str
    default: []
  cluster:
    description: ECS cluster of O(services) (AWS checks).
    type: str
  services:
    description: ECS service names whose deployments must be complete (AWS checks).
    type: list
    elements: str
    default: []
  task_definitions:
    description:
      - Task definition ARN per service of O(services) that the service's primary deployment must run (both
        profiles), the revisions this deployment registered. A primary deployment of another revision is C(fatal).
    type: dict
    default: {}
  target_group_arn:
    description: ALB target group whose targets must be healthy (AWS checks).
    type: str
  local_status_file:
    description: The offline runtime's C(status.json); every service in O(local_services) must be running.
    type: path
  local_services:
    description: Services the local runtime must run (offline checks).
    type: list
    elements: str
    default: []
  local_task_definitions:
    description:
      - Task definition ARN per service of O(local_services) that its local task must run (as an ECS deployment must
        complete); a task of another revision does not count as running.
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for everything to be healthy (0 checks once).
    type: int
    default: 600
  interval:
    description: The longest wait, in seconds, between two checks (the waits double from 1 s up to it).
    type: int
    default: 10
  request_timeout:
    description: Seconds before an HTTP request to the deployment is abandoned.
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates (with an HTTPS O(url)).
    type: bool
    default: true
  allow_plain_http:
    description:
      - Send O(username) and O(password) over plain HTTP to a host that is not loopback (127.0.0.0/8, C(::1),
        C(localhost)). Off by default, the module then fails before any request, naming O(url) and the fix, since
        the password would cross the network in clear text.
      - HTTPS URLs, loopback URLs and checks without credentials are never refused.
    type: bool
    default: false
  crash_loop_stops:
    description:
      - Tasks of a service stopped in a row with the same error after which waiting is pointless (the check is
        C(fatal)). V(0) never gives up before O(timeout).
    type: int
    default: 3
  fail_on_unhealthy:
    description: Fail when a check does not pass (the action plugin turns it off between attempts).
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait for Dagster behind the ALB
  dagster_ecs.fargate.stack_health:
    url: "https://{{ alb_dns_name }}"
    username: admin
    password: "{{ basic_auth_password }}"
    cluster: dagster-ecs
    services: [dagster-ecs-webserver, dagster-ecs-daemon]
    target_group_arn: "{{ target_group_arn }}"
    expected_assets: [raw_orders, cleaned_orders, daily_revenue]
    timeout: 900
  no_log: false
"""

RETURN = r"""
healthy:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Each check with C(ok) and a short C(detail).
  returned: always
  type: dict
  sample: {"health_endpoint": {"ok": false, "detail": "HTTP 503: code location loading"}}
unhealthy:
  description: Names of the checks that did not pass.
  returned: always
  type: list
  elements: str
fatal:
  description:
    - Names of the checks waiting cannot fix, the module then fails at once; their C(checks) entry says why.
    - A service that is crash-looping (see O(crash_loop_stops)), or whose deployment of O(task_definitions) ECS
      rolled back (its C(checks) entry has C(rolled_back=true)).
  returned: always
  type: list
  elements: str
"""

import base64
import json
import os
import time

from ansible.module_utils.urls import open_url
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, client
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.plain_http import (
    is_redirect,
    not_followed,
    plain_http_refusal,
)
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.tasklogs import log_tail

GRAPHQL = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
  assetNodes { assetKey { path } } }
"""


def http(module, url, data=None, auth=None):
    headers = {"Content-Type": "application/json"} if data else {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        response = open_url(
            url,
            data=data,
            headers=headers,
            method="POST" if data else "GET",
            timeout=module.params["request_timeout"],
            validate_certs=module.params["validate_certs"],
            # urllib would resend every header, the credentials too, to wherever a redirect points
            follow_redirects="none",
        )
        return response.status, response.read()
    except Exception as e:  # urllib HTTPError carries the status; anything else is "not answering"
        status = getattr(e, "code", None)
        if is_redirect(status):
            return status, not_followed(e).encode()
        body = e.read() if hasattr(e, "read") else b""
        return status, body or str(e).encode()


def check_ecs(module, checks):
    ecs = client(module, "ecs")
    try:
        found = ecs.describe_services(
            aws_retry=True, cluster=module.params["cluster"], services=module.params["services"]
        )
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg="Failed to describe the ECS services")
    by_name = {s["serviceName"]: s for s in found.get("services", [])}
    for name in module.params["services"]:
        service = by_name.get(name)
        if not service or service.get("status") != "ACTIVE":
            checks[f"ecs:{name}"] = {"ok": False, "detail": "service not found"}
            continue
        primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
        running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
        state = primary.get("rolloutState", "UNKNOWN")
        ok = state == "COMPLETED" and desired > 0 and running == desired and len(service.get("deployments", [])) == 1
        check = {"ok": ok, "detail": f"{running}/{desired} running, deployment {state}"}
        wanted = module.params["task_definitions"].get(name)
        current = primary.get("taskDefinition")
        if wanted and current and revision(current) != revision(wanted):
            rolled_back(module, ecs, name, primary, wanted, running, check)
        elif state == "FAILED" and current:  # the circuit breaker without rollback: ECS starts no more of its tasks
            check["detail"] += f" of {revision(current)} (the deployment circuit breaker: its tasks kept failing)"
            explain_stopped(module, ecs, name, primary, running, check)
            check["fatal"] = True
        elif not ok and current:
            explain_stopped(module, ecs, name, primary, running, check)
        checks[f"ecs:{name}"] = check


def rolled_back(module, ecs, service, primary, wanted, running, check):
    """The service's primary deployment runs another revision than this deployment's: ECS rolled it back (the
    deployment circuit breaker) or another deployment replaced it. Fatal: ECS does not try the revision again."""
    check["detail"] += (
        f" of {revision(primary['taskDefinition'])}, not {revision(wanted)}: ECS rolled {revision(wanted)} back"
        " (the deployment circuit breaker stops a revision whose tasks keep failing) or another deployment"
        " replaced it"
    )
    explain_stopped(module, ecs, service, {"taskDefinition": wanted}, running, check)
    check.update(ok=False, fatal=True, rolled_back=True)


def revision(arn):
    """``family:revision`` of a task definition ARN."""
    return arn.rsplit("/", 1)[-1]


def _stopped_error(task):
    containers = task.get("containers") or [{}]
    codes = [c.get("exitCode") for c in containers if c.get("exitCode") is not None]
    reasons = [c["reason"] for c in containers if c.get("reason")]
    return "; ".join(
        part
        for part in (task.get("stoppedReason", "stopped"), f"exit code {codes[0]}" if codes else "", *reasons)
        if part
    )


def explain_stopped(module, ecs, service, primary, running, check):
    """Why the primary deployment's tasks stop: the newest stopped task's reason, exit code and last log lines."""
    try:
        arns = ecs.list_tasks(
            aws_retry=True, cluster=module.params["cluster"], serviceName=service, desiredStatus="STOPPED"
        ).get("taskArns", [])
        if not arns:
            return
        tasks = ecs.describe_tasks(aws_retry=True, cluster=module.params["cluster"], tasks=arns[:100])["tasks"]
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to describe the stopped tasks of {service}")
    tasks = [t for t in tasks if t.get("taskDefinitionArn") == primary["taskDefinition"]]
    tasks.sort(key=lambda t: str(t.get("stoppedAt") or t.get("createdAt") or ""), reverse=True)
    if not tasks:
        return
    error = _stopped_error(tasks[0])
    streak = 0
    for task in tasks:
        if _stopped_error(task) != error:
            break
        streak += 1
    lines = log_tail(module, ecs, tasks[0])
    check["detail"] += f"; {streak} stopped task(s) in a row, the last: {error}"
    if lines:
        check["detail"] += " | log: " + " | ".join(lines)
    limit = module.params["crash_loop_stops"]
    check["fatal"] = bool(limit) and running == 0 and streak >= limit


def check_targets(module, checks):
    elb = client(module, "elbv2")
    try:
        health = elb.describe_target_health(aws_retry=True, TargetGroupArn=module.params["target_group_arn"])
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg="Failed to describe the target group's health")
    states = [t["TargetHealth"]["State"] for t in health.get("TargetHealthDescriptions", [])]
    serving = [s for s in states if s != "draining"]
    ok = bool(serving) and all(s == "healthy" for s in serving)
    detail = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))) or "no targets registered"
    checks["alb_targets"] = {"ok": ok, "detail": detail}


def check_local(module, checks):
    try:
        with open(module.params["local_status_file"]) as handle:
            status = json.load(handle)
    except (OSError, ValueError):
        checks["local_runtime"] = {"ok": False, "detail": "the local runtime is not running"}
        return
    for name in module.params["local_services"]:
        task = status.get("services", {}).get(name)
        alive = False
        if task and task.get("running"):
            try:
                os.kill(task["pid"], 0)
                alive = True
            except PermissionError:  # EPERM: the process exists, owned by another user
                alive = True
            except OSError:  # ESRCH: gone
                alive = False
        detail = f"running (pid {task['pid']}, {task['restarts']} restarts)" if alive else "no running task"
        wanted = module.params["local_task_definitions"].get(name)
        if alive and wanted and task.get("task_definition") != wanted:
            alive = False
            detail = (
                f"still running {str(task.get('task_definition')).rsplit('/', 1)[-1]}, not {wanted.rsplit('/', 1)[-1]}"
            )
        check = {"ok": alive, "detail": detail}
        last = (task or {}).get("last_exit")
        if last:
            check["detail"] += f"; {last['same_error']} stopped task(s) in a row, the last: exit code {last['code']}: "
            check["detail"] += last["error"]
            limit = module.params["crash_loop_stops"]
            check["fatal"] = bool(limit) and not alive and last["same_error"] >= limit
        checks[f"local:{name}"] = check


def check_dagster(module, checks):
    base = module.params["url"].rstrip("/")
    status, body = http(module, f"{base}/health")
    reason = body.decode(errors="replace").strip()
    if not is_redirect(status):  # a redirect not followed keeps its whole location
        reason = reason[:80]
    checks["health_endpoint"] = {"ok": status == 200, "detail": f"HTTP {status}: {reason}" if status else reason}
    auth = (module.params["username"], module.params["password"]) if module.params["username"] else None
    status, body = http(module, f"{base}/graphql", data=json.dumps({"query": GRAPHQL}).encode(), auth=auth)
    if status != 200:
        detail = f"HTTP {status}" if status else body.decode(errors="replace")[:80]
        if is_redirect(status):
            detail += f": {body.decode()}"
        checks["graphql"] = {"ok": False, "detail": detail}
        return
    try:
        data = (json.loads(body) or {}).get("data") or {}
    except (ValueError, AttributeError):  # not JSON, or not a JSON object: not Dagster's GraphQL answer
        checks["graphql"] = {"ok": False, "detail": "not a GraphQL answer: " + body.decode(errors="replace")[:80]}
        return
    workspace = data.get("workspaceOrError") or {}
    entries = workspace.get("locationEntries") or []
    broken = [
        f"{e['name']} ({e['loadStatus']}, {(e.get('locationOrLoadError') or {}).get('__typename')})"
        for e in entries
        if e.get("loadStatus") != "LOADED"
        or (e.get("locationOrLoadError") or {}).get("__typename") != "RepositoryLocation"
    ]
    checks["code_locations"] = {
        "ok": bool(entries) and not broken,
        "detail": "; ".join(broken) if broken else f"{len(entries)} loaded" if entries else "none",
    }
    daemons = ((data.get("instance") or {}).get("daemonHealth") or {}).get("allDaemonStatuses") or []
    sick = [d["daemonType"] for d in daemons if d.get("required") and not d.get("healthy")]
    checks["daemon"] = {
        "ok": bool(daemons) and not sick,
        "detail": ("unhealthy: " + ", ".join(sick))
        if sick
        else f"{len(daemons)} daemons healthy"
        if daemons
        else "no heartbeat",
    }
    present = {"/".join(node["assetKey"]["path"]) for node in data.get("assetNodes") or []}
    missing = sorted(set(module.params["expected_assets"]) - present)
    checks["assets"] = {
        "ok": not missing,
        "detail": ("missing: " + ", ".join(missing)) if missing else f"{len(present)} assets",
    }


def details(checks, names):
    return "; ".join(f"{name}: {checks[name]['detail']}" for name in names)


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            expected_assets=dict(type="list", elements="str", default=[]),
            cluster=dict(type="str"),
            services=dict(type="list", elements="str", default=[]),
            task_definitions=dict(type="dict", default={}),
            target_group_arn=dict(type="str"),
            local_status_file=dict(type="path"),
            local_services=dict(type="list", elements="str", default=[]),
            local_task_definitions=dict(type="dict", default={}),
            timeout=dict(type="int", default=600),
            interval=dict(type="int", default=10),
            request_timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            allow_plain_http=dict(type="bool", default=False),
            crash_loop_stops=dict(type="int", default=3),
            fail_on_unhealthy=dict(type="bool", default=True),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    if module.params["services"] and not module.params["cluster"]:
        module.fail_json(msg="cluster is required with services")
    if module.params["username"]:  # check_dagster sends basic auth exactly then
        refusal = plain_http_refusal(module.params["url"], allow_plain_http=module.params["allow_plain_http"])
        if refusal:
            module.fail_json(msg=refusal, url=module.params["url"])
    started = time.monotonic()
    checks = {}
    if module.params["services"]:
        check_ecs(module, checks)
    if module.params["target_group_arn"]:
        check_targets(module, checks)
    if module.params["local_status_file"]:
        check_local(module, checks)
    check_dagster(module, checks)
    unhealthy = [name for name, check in checks.items() if not check["ok"]]
    fatal = [name for name in unhealthy if checks[name].get("fatal")]
    result = dict(
        changed=False,
        healthy=not unhealthy,
        checks=checks,
        unhealthy=unhealthy,
        fatal=fatal,
        elapsed=round(time.monotonic() - started, 2),
    )
    if fatal:
        back = [name for name in fatal if checks[name].get("rolled_back")]
        crashing = [name for name in fatal if name not in back]
        parts = []
        if back:
            parts.append(f"ECS does not run the revision this deployment registered: {details(checks, back)}")
        if crashing:
            parts.append(
                f"Dagster cannot start, its tasks keep stopping with the same error: {details(checks, crashing)}"
            )
        module.fail_json(msg="; ".join(parts), **result)
    if unhealthy and module.params["fail_on_unhealthy"]:
        module.fail_json(msg=f"Dagster is not healthy: {details(checks, unhealthy)}", **result)
    module.exit_json(msg="healthy" if not unhealthy else "not healthy", **result)


if __name__ == "__main__":
    main()

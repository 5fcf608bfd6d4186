"""The offline rehearsal, end to end: site.yml builds every stage and serves a real Dagster.

site.yml on a fresh emulator (ports chosen free; the offline profile starts it), every stage's
resources are read back through boto3 (tests/support/stage_checks.py), a check-mode re-run changes
nothing; then the workload is exercised the way a user and the AWS infrastructure would: through
nginx, with the credentials from the emulated Secrets Manager, against the local ECS runtime's
tasks and its real PostgreSQL: nginx basic auth, /health, GraphQL, PostgreSQL, recovery, DAG
deploys, rollback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
import yaml
from support import processes
from support.aws_inventory import clients
from support.browser import chromium, serve_page
from support.iam_proof import EXAMPLE_VALUES, ROLE_TEMPLATES, deploy_actions, prove, render_template, shape
from support.net import free_port, request, wait_for, wait_for_status
from support.paths import ROOT
from support.playbook import run_playbook
from support.stage_checks import CHECKS, Stack

pytestmark = pytest.mark.integration
PROJECT = "dagster-ecs"
NEXT_DAGSTER = "1.13.99"  # the Dagster version new_revision's image says it carries (a migration)
ASSETS = {"raw_orders", "cleaned_orders", "daily_revenue"}
QUIET = {"capture_output": True, "text": True, "timeout": 120, "check": False}


SLOW_JOB = '''"""A test job (no asset): it waits, so that a test can act on a run while it runs."""
import time

import dagster as dg


@dg.op(config_schema={"seconds": dg.Field(float, default_value=120.0)})
def wait(context) -> None:
    context.log.info("waiting")
    deadline = time.monotonic() + context.op_config["seconds"]
    while time.monotonic() < deadline:
        time.sleep(0.2)


@dg.job(description="Waits (a test job).")
def slow_job():
    wait()
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    dags = tmp_path_factory.mktemp("dags") / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    (dags / "pipelines" / "slow.py").write_text(SLOW_JOB)  # a run that lasts, for the tests that act on one
    endpoint = f"http://127.0.0.1:{free_port()}"
    proxy = free_port()
    extra = {
        "dagster_ecs_aws_endpoint_url": endpoint,
        "dagster_ecs_state_dir": str(state),
        "local_runtime_proxy_port": proxy,
        "dagster_ecs_dags_dir": str(dags),
    }
    run = run_playbook("site.yml", extra_vars=extra)
    secrets = clients(endpoint)("secretsmanager")
    basic = json.loads(secrets.get_secret_value(SecretId=f"{PROJECT}/basic-auth")["SecretString"])
    database = json.loads(secrets.get_secret_value(SecretId=f"{PROJECT}/database")["SecretString"])
    yield {
        "run": run,
        "extra": extra,
        "url": f"http://127.0.0.1:{proxy}",
        "auth": (basic["username"], basic["password"]),
        "database": database,
        "runtime": state / "offline" / "runtime",
        "dags": dags,
        "endpoint": endpoint,
        "state": state,
    }
    run_playbook("playbooks/down.yml", extra_vars=extra)


def graphql(stack, query, variables=None):
    status, body = request(
        f"{stack['url']}/graphql", stack["auth"], json.dumps({"query": query, "variables": variables or {}}).encode()
    )
    assert status == 200, body[:300]
    return json.loads(body)["data"]


def test_site_ends_with_a_healthy_dagster(stack):
    run = stack["run"]
    assert run.returncode == 0, run.output[-6000:]
    assert f"Dagster is healthy at {stack['url']}" in run.output
    assert f"{stack['endpoint']} is served by dagster-ecs-emulator (started now" in run.output
    outputs = json.loads((stack["runtime"].parent / "outputs.json").read_text())
    assert outputs["load_balancer_url"] == stack["url"]


@pytest.mark.parametrize("stage", [name for name in CHECKS if name not in ("offline_endpoint", "teardown")])
def test_each_stage_built_what_it_should(stack, stage):
    """The checks each molecule scenario's verify makes, here after one whole site.yml."""
    CHECKS[stage](Stack(stack["endpoint"], PROJECT, state_dir=stack["state"], url=stack["url"]))


def test_check_mode_on_the_converged_stack_changes_nothing(stack):
    check = run_playbook("site.yml", "--check", "--diff", extra_vars=stack["extra"])
    assert check.returncode == 0, check.output[-6000:]
    assert check.recap["changed"] == 0, check.changed_tasks()
    # Every stage is previewed: none ends it for want of an id a check-mode module did not return (the stock
    # target group and ALB modules return none in check mode; the loadbalancer role reads them instead).
    assert "Check mode:" not in check.output, check.output[check.output.find("Check mode:") - 3000 :][:4000]
    assert "TASK [ecs : Create or update the services]" in check.output
    assert f"Dagster is healthy at {stack['url']}" in check.output


def test_the_task_definitions_health_checks_pass_in_the_running_tasks(stack):
    """Each container's healthCheck (the image's ``dagster-ecs-entrypoint healthcheck webserver|daemon``),
    run by the local runtime as the ECS agent runs it, in the task's environment: both tasks turn HEALTHY.
    A check that failed there would get the tasks replaced on Fargate every few minutes."""
    ecs = clients(stack["endpoint"])("ecs")

    def health():
        arns = ecs.list_tasks(cluster=PROJECT, desiredStatus="RUNNING")["taskArns"]
        tasks = ecs.describe_tasks(cluster=PROJECT, tasks=arns)["tasks"] if arns else []
        return {task["group"]: task["healthStatus"] for task in tasks if task["group"].startswith("service:")}

    # the first check runs 30 s (the interval) after a task started; the daemon's counts after 120 s at the latest
    found = wait_for(
        health, 180, 2, "both tasks to pass their health checks", until=lambda now: set(now.values()) == {"HEALTHY"}
    )
    assert set(found) == {f"service:{PROJECT}-webserver", f"service:{PROJECT}-daemon"}
    status = json.loads((stack["runtime"] / "status.json").read_text())["services"]
    assert {name: task["health"] for name, task in status.items()} == {"webserver": "HEALTHY", "daemon": "HEALTHY"}

    # The daemon's check (liveness.py: Dagster asked once which daemons are required, then one SELECT) says what
    # Dagster's own `dagster-daemon liveness-check` says, in the daemon task's environment, on its storage.
    env = dict(line.decode().split("=", 1) for line in processes.environ(status["daemon"]["pid"]) if b"=" in line)
    bin_dir = Path(sys.executable).parent
    for tolerance, expected in ((None, 0), ("-100", 1)):  # -100: every heartbeat is too old
        checked = {**env, **({"DAGSTER_DAEMON_HEARTBEAT_TOLERANCE": tolerance} if tolerance else {})}
        ours = subprocess.run([bin_dir / "dagster-ecs-entrypoint", "healthcheck", "daemon"], env=checked, **QUIET)
        dagsters = subprocess.run([bin_dir / "dagster-daemon", "liveness-check"], env=checked, **QUIET)
        assert (ours.returncode, dagsters.returncode) == (expected, expected), (ours.stdout, dagsters.stdout)


def test_health_is_public_and_reveals_nothing(stack):
    status, body = request(f"{stack['url']}/health")
    assert (status, body) == (200, b"ok\n")


@pytest.mark.parametrize(
    "path",
    ["/", "/graphql", "/server_info", "/health/", "/health/details", "/_dags/sync", "/healthz", "/runs", "/assets"],
)
def test_every_other_path_needs_the_credentials(stack, path):
    assert request(f"{stack['url']}{path}")[0] == 401
    assert request(f"{stack['url']}{path}", data=b"{}")[0] == 401  # POST too
    assert request(f"{stack['url']}{path}", auth=(stack["auth"][0], "wrong-password"))[0] == 401
    assert request(f"{stack['url']}{path}", auth=("intruder", stack["auth"][1]))[0] == 401


def test_credentials_from_secrets_manager_open_the_ui(stack):
    status, body = request(f"{stack['url']}/server_info", stack["auth"])
    assert status == 200 and b"dagster_webserver_version" in body
    assert request(f"{stack['url']}/", stack["auth"])[0] == 200


def test_htpasswd_holds_only_a_bcrypt_hash(stack):
    htpasswd = (stack["runtime"] / "tasks" / "webserver" / "run" / "htpasswd").read_text()
    user, hashed = htpasswd.strip().split(":", 1)
    assert user == stack["auth"][0]
    assert hashed.startswith("$2b$") and stack["auth"][1] not in htpasswd
    assert oct(os.stat(stack["runtime"] / "tasks" / "webserver" / "run" / "htpasswd").st_mode & 0o777) == "0o600"


def test_graphql_lists_the_example_assets(stack):
    data = graphql(stack, "{ assetNodes { assetKey { path } } }")
    assert {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]} == ASSETS


def test_materialization_succeeds_and_is_stored_in_postgres(stack):
    launched = graphql(
        stack,
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
             ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "dags",
                    "repositoryName": "__repository__",
                    "jobName": "orders_job",
                }
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished():
        run = graphql(stack, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})
        status = run["runOrError"].get("status")
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    assert wait_for(finished, 180, 2, "the run to finish") == "SUCCESS"
    status_file = json.loads((stack["runtime"] / "status.json").read_text())
    db = stack["database"]
    with (
        psycopg2.connect(
            host="127.0.0.1",
            port=status_file["database"]["port"],
            dbname=db["dbname"],
            user=db["username"],
            password=db["password"],
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        assert cursor.fetchone()[0] == 3
        cursor.execute("SELECT run_body FROM runs WHERE run_id = %s", (run_id,))
        images = set(_values(json.loads(cursor.fetchone()[0]), "container_image"))
    # The run names its image (the code server reports DAGSTER_CURRENT_IMAGE): the ECS run launcher needs it.
    assert images == {_task_image(stack, "daemon")}


def test_dagsters_client_runs_orders_job_as_its_own_ecs_task(stack):
    """The production run path offline: DagsterGraphQLClient -> queued run -> EcsRunLauncher -> RunTask.

    The local runtime starts the run task from RunTask (``oneoff.py``); the emulated ECS reports it
    STOPPED with the run worker's real exit code, and its output is in CloudWatch Logs.
    """
    client = _client(stack)
    run_id = client.submit_job_execution(
        "orders_job", repository_location_name="dags", repository_name="__repository__"
    )

    def finished():
        status = client.get_run_status(run_id).value
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    assert wait_for(finished, 240, 2, "the run to finish") == "SUCCESS"
    aws = clients(stack["endpoint"])

    def stopped_task():
        mine = _run_tasks(stack, run_id)
        return mine[0] if mine and mine[0]["lastStatus"] == "STOPPED" else None

    task = wait_for(stopped_task, 30, 1, "the run's ECS task to stop")
    assert task["containers"][0]["exitCode"] == 0, task
    assert task["stoppedReason"] == "Essential container in task exited"
    stream = f"run/run/{task['taskArn'].rsplit('/', 1)[-1]}"
    events = aws("logs").get_log_events(logGroupName=f"/ecs/{PROJECT}", logStreamName=stream)["events"]
    messages = [event["message"] for event in events]
    assert any("RUN_SUCCESS" in line and run_id in line for line in messages), messages[-5:]
    # The daemon launched it and did not execute it: its steps are in the run task's log only.
    steps = [line for line in messages if run_id in line and "STEP_START" in line]
    assert steps, messages[-5:]
    daemon_log = (stack["runtime"] / "daemon.log").read_text(errors="replace")
    assert not [line for line in daemon_log.splitlines() if run_id in line and "STEP_START" in line]


def _submit(stack, job="slow_job", seconds=None, tags=None):
    client = _client(stack)
    run_id = client.submit_job_execution(
        job,
        repository_location_name="dags",
        repository_name="__repository__",
        run_config={"ops": {"wait": {"config": {"seconds": seconds}}}} if seconds is not None else None,
        tags=tags,
    )
    return client, run_id


def _run_reaches(client, run_id, wanted, timeout):
    def reached():
        status = client.get_run_status(run_id).value
        return status if status in wanted else None

    return wait_for(reached, timeout, 0.5, f"run {run_id} to be {' or '.join(sorted(wanted))}")


FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

RUN_EVENTS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
  eventConnection { events { __typename ... on MessageEvent { message }
    ... on EngineEvent { error { message } } ... on RunFailureEvent { error { message } } } } } } }"""


def _run_messages(stack, run_id):
    """Each event of the run's event log: its message and the error it carries, if any."""
    run = graphql(stack, RUN_EVENTS, {"id": run_id})["runOrError"]
    events = run["eventConnection"]["events"]
    return [" ".join([event.get("message") or "", (event.get("error") or {}).get("message", "")]) for event in events]


def _stopped_run_task(stack, run_id, timeout=60):
    def stopped():
        mine = _run_tasks(stack, run_id)
        return mine[0] if mine and mine[0]["lastStatus"] == "STOPPED" else None

    return wait_for(stopped, timeout, 1, f"the ECS task of run {run_id} to stop")


def test_terminating_a_run_through_graphql_stops_its_task(stack):
    """The UI's Terminate: the webserver's launcher calls StopTask; the task gets SIGTERM; the run is CANCELED."""
    client, run_id = _submit(stack)
    _run_reaches(client, run_id, {"STARTED"}, 240)
    client.terminate_run(run_id)
    assert _run_reaches(client, run_id, FINISHED, 120) == "CANCELED"
    task = _stopped_run_task(stack, run_id)
    assert task["stopCode"] == "UserInitiated", task
    assert task["desiredStatus"] == "STOPPED"


def test_a_run_tagged_to_change_its_command_starts_no_task(stack):
    """``ecs/container_overrides`` would run any command with the run's role: refused, in the run's event log."""
    tags = {"ecs/container_overrides": json.dumps({"command": ["sh", "-c", "echo anything"]})}
    client, run_id = _submit(stack, seconds=1, tags=tags)
    assert _run_reaches(client, run_id, FINISHED, 180) == "FAILURE"
    messages = _run_messages(stack, run_id)
    assert any("ecs/container_overrides" in message for message in messages), messages[-5:]
    assert _run_tasks(stack, run_id) == []


def test_queued_runs_never_run_more_tasks_than_max_concurrent_runs(stack):
    """QueuedRunCoordinator's limit (ecs_max_concurrent_runs, 2) holds for the run tasks themselves.

    What the limit bounds is runs in progress: a run's task that is still RUNNING for the seconds
    after its run reported SUCCESS (its process exiting; on AWS, ECS's own lag) is not one, so a
    task counts while its run is not finished. Tasks are read before the runs' statuses, so a run
    that finished in between is never counted beside the run that took its place.
    """
    client = _client(stack)
    runs = [_submit(stack, seconds=6)[1] for _ in range(3)]
    most = most_tasks = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        alive = {run_id for run_id in runs for task in _run_tasks(stack, run_id) if task["lastStatus"] != "STOPPED"}
        statuses = {run_id: client.get_run_status(run_id).value for run_id in runs}
        most_tasks = max(most_tasks, len(alive))
        most = max(most, len([run_id for run_id in alive if statuses[run_id] not in FINISHED]))
        if all(status in FINISHED for status in statuses.values()):
            break
        time.sleep(0.5)
    assert [client.get_run_status(run_id).value for run_id in runs] == ["SUCCESS"] * 3
    assert most == 2, f"at most {most} run task(s) of unfinished runs at once ({most_tasks} tasks alive at most)"
    print(f"run tasks alive at once: {most} of unfinished runs, {most_tasks} counting finished runs' exiting tasks")


def test_a_run_whose_task_dies_is_failed_by_run_monitoring(stack):
    """Its process killed (no chance to report): run monitoring asks ECS, and fails the run with the task's reason."""
    client, run_id = _submit(stack)
    _run_reaches(client, run_id, {"STARTED"}, 240)
    (task,) = _run_tasks(stack, run_id)
    running = json.loads((stack["runtime"] / "status.json").read_text())["oneoff"]["running"]
    os.killpg(running[task["taskArn"]]["pid"], signal.SIGKILL)
    # run_monitoring polls every 60 s (dagster.yaml): the failure comes within one interval and a bit.
    assert _run_reaches(client, run_id, FINISHED, 150) == "FAILURE"
    stopped = _stopped_run_task(stack, run_id)
    assert stopped["containers"][0]["exitCode"] == 137
    messages = "\n".join(_run_messages(stack, run_id))
    assert "Essential container in task exited" in messages, messages[-2000:]


def _client(stack):
    from dagster_graphql import DagsterGraphQLClient

    host, port = stack["url"].removeprefix("http://").split(":")
    return DagsterGraphQLClient(host, port_number=int(port), use_https=False, auth=stack["auth"])


def _run_tasks(stack, run_id):
    ecs = clients(stack["endpoint"])("ecs")
    arns = ecs.list_tasks(cluster=PROJECT, family=f"{PROJECT}-run")["taskArns"]
    tasks = ecs.describe_tasks(cluster=PROJECT, tasks=arns, include=["TAGS"])["tasks"] if arns else []
    return [t for t in tasks if {"key": "dagster/run_id", "value": run_id} in t.get("tags", [])]


def _values(document, key):
    if isinstance(document, dict):
        for name, value in document.items():
            yield from [value] if name == key else _values(value, key)
    elif isinstance(document, list):
        for item in document:
            yield from _values(item, key)


def _task_image(stack, service):
    ecs = clients(stack["endpoint"])("ecs")
    definition = ecs.describe_task_definition(taskDefinition=f"{PROJECT}-{service}")["taskDefinition"]
    return definition["containerDefinitions"][0]["image"]


REVIEW_MUTATION = "/graphql?query=mutation%7BreloadWorkspace%7B__typename%7D%7D"


def test_the_reviews_cross_site_mutation_is_refused_by_the_real_stack(stack):
    """Finding 1 as reported: text/plain POST with the mutation in the URL, and a cross-site JSON POST."""
    url, auth = stack["url"], stack["auth"]
    status, body = request(url + REVIEW_MUTATION, auth, b"x", headers={"Content-Type": "text/plain"})
    assert status == 415, body
    query = json.dumps({"query": "mutation { reloadWorkspace { __typename } }"}).encode()
    foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert request(url + "/graphql", auth, query, headers=foreign)[0] == 403
    status, body = request(url + "/graphql", auth, query)
    assert status == 200 and b"reloadWorkspace" in body  # an API client with the credentials still can


ATTACK = """<!doctype html><title>another site</title>
<form method="POST" enctype="text/plain" action="{target}{mutation}"><input name="x" value="y"></form>
<script>
window.attempts = {{}};
fetch("{target}/graphql", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}},
  body: JSON.stringify({{query: "mutation {{ reloadWorkspace {{ __typename }} }}"}})}})
  .then(r => window.attempts.fetch = "answered " + r.status, e => window.attempts.fetch = "failed");
const socket = new WebSocket("{socket}/graphql", "graphql-ws");
socket.onopen = () => window.attempts.socket = "open";
socket.onerror = () => window.attempts.socket = "refused";
</script>"""


def test_the_dagster_ui_works_in_a_real_browser(stack, tmp_path, record_property):
    """Headless Chromium signs in, loads the asset graph, launches a run and watches its logs live."""
    with chromium(stack["auth"]) as context:
        page = context.new_page()
        frames = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(str(frame))))
        refused = []
        page.on("response", lambda r: refused.append((r.status, r.url)) if r.status in (403, 415) else None)
        page.goto(f"{stack['url']}/asset-groups")
        for asset in sorted(ASSETS):
            page.get_by_text(asset).first.wait_for(timeout=60_000)
        skip = page.get_by_role("button", name="Skip")  # Dagster's one-time community dialog
        if skip.count():
            skip.click()
        graph = tmp_path / "asset-graph.png"
        page.screenshot(path=str(graph))
        page.get_by_role("button", name="Materialize all").click()
        page.get_by_role("link", name=re.compile("^View$")).first.click()  # the "Launched run" toast
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"), timeout=30_000)
        page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=180_000)
        run = tmp_path / "run.png"
        page.screenshot(path=str(run))
    for shot in (graph, run):
        record_property(shot.stem, str(shot))
        print(f"screenshot: {shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # a page, not blank
    assert refused == [], "the UI's own requests were refused by the CSRF rules"
    logs = [frame for frame in frames if "pipelineRunLogs" in frame]
    assert logs and any("RUN_SUCCESS" in frame for frame in logs), "the run's logs did not arrive over the websocket"


def test_another_sites_page_cannot_act_for_a_signed_in_user(stack):
    """The browser resends the credentials; nginx refuses the form, the fetch and the websocket."""
    target = stack["url"]
    with chromium(stack["auth"]) as context:
        page = context.new_page()
        page.goto(target + "/server_info")  # signed in: the browser holds the credentials for the deployment
        html = ATTACK.format(target=target, mutation=REVIEW_MUTATION, socket=target.replace("http", "ws", 1))
        with serve_page(html) as port:
            page.goto(f"http://localhost:{port}/")  # localhost: another site than 127.0.0.1
            page.wait_for_function("window.attempts.fetch && window.attempts.socket")
            attempts = page.evaluate("window.attempts")
            with page.expect_navigation() as submitted:
                page.evaluate("document.forms[0].submit()")
            response = submitted.value
            assert response.status == 403, response.status
            assert "cross-site request refused" in page.content()
    assert attempts == {"fetch": "failed", "socket": "refused"}


def test_no_process_of_the_tasks_carries_a_secret_it_does_not_use(stack):
    """Finding 4: no BASIC_AUTH_* anywhere once the htpasswd exists; the database password not in nginx."""
    status = json.loads((stack["runtime"] / "status.json").read_text())
    pids = [pid for task in status["services"].values() for pid in processes.tree(task["pid"])]
    commands = {pid: processes.cmdline(pid) for pid in pids}
    assert any("nginx" in cmd for cmd in commands.values()) and any("dagster-daemon" in c for c in commands.values())
    basic = stack["auth"][1].encode()
    database = stack["database"]["password"].encode()
    for pid, cmd in commands.items():
        environ = processes.environ(pid)
        assert not [v for v in environ if v.startswith(b"BASIC_AUTH_") or basic in v], f"{pid} {cmd}"
        if "nginx" in cmd:
            assert not [v for v in environ if database in v], f"nginx ({pid}) has the database password"


def test_killed_webserver_fails_health_then_comes_back(stack):
    status = json.loads((stack["runtime"] / "status.json").read_text())
    supervisord = status["services"]["webserver"]["pid"]
    webserver = next(p for p in processes.children(supervisord) if "dagster-webserver" in processes.cmdline(p))
    os.kill(webserver, signal.SIGKILL)
    wait_for_status(f"{stack['url']}/health", 503, 20, 0.5, "/health to report the dead webserver")
    wait_for_status(f"{stack['url']}/health", 200, 120, 2, "the webserver to come back")


def test_a_crashed_task_is_replaced_like_ecs_would(stack):
    before = json.loads((stack["runtime"] / "status.json").read_text())["services"]["webserver"]
    os.killpg(before["pid"], signal.SIGKILL)

    def replaced():
        now = json.loads((stack["runtime"] / "status.json").read_text())["services"].get("webserver")
        return now if now and now["pid"] != before["pid"] and now["running"] else None

    after = wait_for(replaced, 60, 1, "the runtime to replace the task")
    assert after["restarts"] == before["restarts"] + 1
    wait_for_status(f"{stack['url']}/health", 200, 180, 2, "the replacement task to be healthy")


@pytest.fixture(scope="module")
def new_revision(stack):
    """The secrets and ecs stages again, verbose (-vvv), with a new image: new task definition revisions.

    The new image says it carries another Dagster version, so the rollout first migrates the storage in
    a one-off task (one of the calls the IAM proof judges). Its output is also one of the places
    test_generated_secrets_never_leak searches.
    """
    before = json.loads((stack["runtime"] / "status.json").read_text())["services"]["daemon"]
    stack["extra"]["dagster_ecs_dagster_version"] = NEXT_DAGSTER  # from here on, "the new image" is deployed
    extra = {**stack["extra"], "dagster_ecs_image_tag": "0.1.1"}
    return before, run_playbook("site.yml", "--tags", "secrets,ecs", "-vvv", extra_vars=extra)


def test_a_new_task_definition_replaces_the_running_task(stack, new_revision):
    before, run = new_revision
    assert run.returncode == 0, run.output[-4000:]
    assert f"-> {NEXT_DAGSTER}: ran `dagster instance migrate` in task" in run.output

    def redeployed():
        now = json.loads((stack["runtime"] / "status.json").read_text())["services"].get("daemon")
        return now if now and now["task_definition"] != before["task_definition"] and now["running"] else None

    after = wait_for(redeployed, 60, 1, "the new revision to replace the daemon task")
    assert after["task_definition"].endswith(":2")
    verify = run_playbook(
        "site.yml", "--tags", "verify", extra_vars={**stack["extra"], "dagster_ecs_image_tag": "0.1.1"}
    )
    assert verify.returncode == 0, verify.output[-4000:]


def asset_keys(stack):
    data = graphql(stack, "{ assetNodes { assetKey { path } } }")
    return {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}


NEW_ASSET = """
import dagster as dg


@dg.asset(group_name="added", description="Published by a test.")
def {name}() -> int:
    return 7
"""


def deploy_dags(stack, **extra):
    run = run_playbook("site.yml", "--tags", "dags", extra_vars={**stack["extra"], **extra})
    return run


def test_a_dag_change_goes_live_without_a_restart(stack):
    """Live without a restart; and a run launched before it finishes on the version it was launched with."""
    status = json.loads((stack["runtime"] / "status.json").read_text())["services"]
    launched_on = json.loads(request(f"{stack['url']}/health/details", stack["auth"])[1])["dags"]["version"]
    client, run_id = _submit(stack, seconds=20)
    _run_reaches(client, run_id, {"STARTED"}, 240)
    (stack["dags"] / "pipelines" / "added.py").write_text(NEW_ASSET.format(name="added_asset"))
    started = time.monotonic()
    run = deploy_dags(stack)
    assert run.returncode == 0, run.output[-4000:]
    # The play asked the webserver to take the version and waited: live when the play ends, no poll wait.
    assert f"Live on the webserver at {stack['url']}" in run.output, run.output[-3000:]
    assert "added_asset" in asset_keys(stack)
    print(f"--tags dags to the new asset in GraphQL: {time.monotonic() - started:.1f}s")
    now = json.loads((stack["runtime"] / "status.json").read_text())["services"]
    assert {name: task["pid"] for name, task in now.items()} == {name: task["pid"] for name, task in status.items()}
    status_code, body = request(f"{stack['url']}/health/details", stack["auth"])
    details = json.loads(body)
    assert status_code == 200 and details["dags"]["source"] == "s3" and details["dags"]["last_error"] is None
    assert request(f"{stack['url']}/health")[0] == 200
    assert details["dags"]["version"] != launched_on
    assert _run_reaches(client, run_id, FINISHED, 180) == "SUCCESS"
    task = _stopped_run_task(stack, run_id)
    stream = f"run/run/{task['taskArn'].rsplit('/', 1)[-1]}"
    logs = clients(stack["endpoint"])("logs")
    lines = [e["message"] for e in logs.get_log_events(logGroupName=f"/ecs/{PROJECT}", logStreamName=stream)["events"]]
    assert any(f"DAG version {launched_on} live" in line for line in lines), lines[:20]
    assert not any(details["dags"]["version"] in line for line in lines)


def test_a_broken_dag_never_reaches_the_live_ui(stack):
    before = asset_keys(stack)
    broken = stack["dags"] / "pipelines" / "broken.py"
    broken.write_text("import dagster as dg\n\nraise RuntimeError('this DAG is broken')\n")
    try:
        run = deploy_dags(stack)
        assert run.returncode != 0 and "this DAG is broken" in run.output and "pipelines/broken.py" in run.output
    finally:
        broken.unlink()
    time.sleep(3)
    assert asset_keys(stack) == before
    assert request(f"{stack['url']}/health")[0] == 200


def test_rollback_restores_the_previous_assets(stack):
    assert "added_asset" in asset_keys(stack)
    run = deploy_dags(stack, dags_rollback_to="previous")
    assert run.returncode == 0, run.output[-4000:]
    wait_for(lambda: "added_asset" not in asset_keys(stack), 90, 0.5, "the rolled back assets in GraphQL")
    assert asset_keys(stack) >= ASSETS
    (stack["dags"] / "pipelines" / "added.py").unlink()


def test_a_dag_that_loads_here_but_not_in_the_task_is_refused_there(stack):
    """The publisher's check runs on this machine; the task's code server is the check in the image."""
    before = asset_keys(stack)
    _, body = request(f"{stack['url']}/health/details", stack["auth"])
    live = json.loads(body)["dags"]["version"]
    odd = stack["dags"] / "pipelines" / "image_only.py"
    odd.write_text(
        "import os\n\nif 'DAGSTER_DAGS_BUCKET' in os.environ:  # set in the tasks only\n"
        "    raise ImportError('pretend the image lacks a package')\n"
    )
    try:
        run = deploy_dags(stack)
    finally:
        odd.unlink()
    assert run.returncode != 0, run.output[-3000:]
    assert "the webserver refused it" in run.output and "pretend the image lacks a package" in run.output
    assert "dags_rollback_to=previous" in run.output
    assert asset_keys(stack) == before, "the refused version reached the UI"
    assert request(f"{stack['url']}/health")[0] == 200
    _, body = request(f"{stack['url']}/health/details", stack["auth"])
    details = json.loads(body)["dags"]
    assert details["version"] == live and "pretend the image lacks a package" in details["last_error"]
    back = deploy_dags(stack, dags_rollback_to=live)
    assert back.returncode == 0, back.output[-3000:]


DEPENDENT_ASSET = '''"""Uses packages the image does not have, from the DAGs' requirements.txt."""
import dagster as dg
import inflection
import ujson


@dg.asset(group_name="deps", description="Needs inflection (pure Python) and ujson (compiled).")
def titled_report() -> str:
    return ujson.dumps({"title": inflection.titleize("daily_revenue_report")})


deps_job = dg.define_asset_job("deps_job", selection=["titled_report"])
'''
# The test wheels (no package index: tasks never reach one, and neither does this test's publisher).
LOCAL_WHEELS = {"dags_find_links": [str(ROOT / "tests" / "fixtures" / "wheels")], "dags_no_index": True}


def _layer_of(run):
    """The platforms and what happened to each layer, from the play's summary line."""
    return re.findall(r"(cp3\d+-linux-\w+) [\d.]+ kB (built in [\d.]+ s|reused)(, uploaded)?", run.output)


def test_a_dag_dependency_goes_live_without_an_image_and_runs_in_its_run_task(stack):
    """requirements.txt: layers built for the tasks' platform and this machine's, the asset live, its run task
    imports them; rollback goes back to no dependency. (That the same requirements again build and upload
    nothing, and a code-only change reuses the layers, is test_dags.py's test_a_dependency_is_built_once_and_reused,
    through the same playbook: not repeated on this stack.)"""
    live = json.loads(request(f"{stack['url']}/health/details", stack["auth"])[1])["dags"]["version"]
    requirements = stack["dags"] / "requirements.txt"
    module = stack["dags"] / "pipelines" / "with_deps.py"
    requirements.write_text("inflection==0.5.1\nujson==5.10.0\n")
    module.write_text(DEPENDENT_ASSET)
    try:
        run = deploy_dags(stack, **LOCAL_WHEELS)
        assert run.returncode == 0, run.output[-4000:]
        assert f"Live on the webserver at {stack['url']}" in run.output, run.output[-3000:]
        assert "Dependencies: inflection==0.5.1, ujson==5.10.0 (+inflection==0.5.1, +ujson==5.10.0)" in run.output
        built = _layer_of(run)
        assert [platform for platform, _how, _up in built] == ["cp311-linux-aarch64", "cp311-linux-x86_64"], built
        assert all(how.startswith("built") and uploaded for _p, how, uploaded in built), built
        assert "titled_report" in asset_keys(stack)
        client = _client(stack)
        run_id = client.submit_job_execution(
            "deps_job", repository_location_name="dags", repository_name="__repository__"
        )
        assert _run_reaches(client, run_id, FINISHED, 240) == "SUCCESS", "\n".join(_run_messages(stack, run_id))[-3000:]
        assert _stopped_run_task(stack, run_id)["containers"][0]["exitCode"] == 0

    finally:
        requirements.unlink()
        module.unlink()
    back = deploy_dags(stack, dags_rollback_to=live)
    assert back.returncode == 0, back.output[-3000:]
    wait_for(lambda: "titled_report" not in asset_keys(stack), 90, 0.5, "the rolled back assets in GraphQL")
    assert asset_keys(stack) >= ASSETS


def test_a_corrupt_dependency_layer_is_refused_by_the_task(stack):
    """A layer object whose bytes do not match its hash: the publisher finds it present and does not upload it,
    the task's sync refuses the version, live unchanged."""
    from dagster_ecs_container import layers

    before = asset_keys(stack)
    live = json.loads(request(f"{stack['url']}/health/details", stack["auth"])[1])["dags"]["version"]
    wanted = ("inflection==0.5.1",)
    index = layers.Index(find_links=tuple(LOCAL_WHEELS["dags_find_links"]), no_index=True)
    sha = layers.build(wanted, layers.host_target(), index).sha256  # deterministic: what the publisher will build
    bucket = json.loads((stack["runtime"].parent / "outputs.json").read_text())["dag_bucket"]
    clients(stack["endpoint"])("s3").put_object(Bucket=bucket, Key=f"dags/objects/{sha}", Body=b"corrupt")
    requirements = stack["dags"] / "requirements.txt"
    module = stack["dags"] / "pipelines" / "with_deps.py"
    requirements.write_text("\n".join(wanted) + "\n")
    module.write_text("import inflection\n")
    try:
        run = deploy_dags(stack, **LOCAL_WHEELS)
    finally:
        requirements.unlink()
        module.unlink()
    assert run.returncode != 0 and "the webserver refused it" in run.output, run.output[-3000:]
    assert "corrupt" in run.output
    assert asset_keys(stack) == before and request(f"{stack['url']}/health")[0] == 200
    details = json.loads(request(f"{stack['url']}/health/details", stack["auth"])[1])["dags"]
    assert details["version"] == live and "corrupt" in details["last_error"]
    assert deploy_dags(stack, dags_rollback_to=live).returncode == 0


def test_generated_secrets_never_leak(stack, new_revision):
    secrets = [stack["auth"][1], stack["database"]["password"]]
    assert all(len(secret) >= 16 for secret in secrets)
    _, verbose = new_revision
    assert verbose.returncode == 0, verbose.output[-3000:]
    places = {"site.yml output": stack["run"].output, "-vvv output": verbose.output}
    places["outputs.json"] = (stack["runtime"].parent / "outputs.json").read_text()
    for log in stack["runtime"].rglob("*.log"):
        places[str(log)] = log.read_text(errors="replace")
    ecs = clients(stack["endpoint"])("ecs")
    for family in (f"{PROJECT}-webserver", f"{PROJECT}-daemon"):
        definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        for container in definition["containerDefinitions"]:
            places[f"{family} environment"] = json.dumps(container.get("environment", []))
            assert {s["name"] for s in container.get("secrets", [])} >= {"DAGSTER_POSTGRES_PASSWORD"}
    leaks = [where for where, text in places.items() for secret in secrets if secret in text]
    assert leaks == [], f"a generated secret appears in {leaks}"


# Granted, yet no call of this rehearsal uses them; each with the reason it stays (least privilege: a new
# grant is either used by the rehearsal's calls or named here).
GRANTED_UNUSED = {
    (f"{PROJECT}-daemon-task", "ecs:StopTask"): "run monitoring stops a run's task from the daemon when the run "
    "exceeds its dagster/max_runtime or stays CANCELING past cancel_timeout_seconds; no run here does (the "
    "terminate here is the UI's, the webserver's StopTask)",
    **{
        (f"{PROJECT}-{job}-task", action): "Fargate mounts the EFS access point as the task role (IAM "
        "authorization); the local runtime mounts no EFS, the tasks share a directory"
        for job in ("webserver", "daemon", "run")
        for action in ("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
    },
    **{
        (f"{PROJECT}-task-execution", action): "Fargate pulls the image as the execution role; the local "
        "runtime runs the image's code from the venv"
        for action in (
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        )
    },
}


def test_each_roles_calls_are_allowed_by_its_policy_and_nothing_more_is_granted(stack, new_revision):
    """IAM proven by the calls: everything this rehearsal's tasks called (the deploy, DAG syncs, runs, a
    terminate, a run failed by monitoring, a migration) judged by the caller's own role's policies, with
    resources and conditions, the implied ecs:TagResource and iam:PassRole included."""
    iam = clients(stack["endpoint"])("iam")
    roles = {f"{PROJECT}-{suffix}" for suffix in ROLE_TEMPLATES}
    proof = prove(stack["endpoint"], iam, roles)
    print("(role, action) pairs the rehearsal's calls used:")
    for role, action in sorted(proof.observed):
        print(f"  {role:28} {action}")
    unused = proof.unused()
    print("granted, not used by any call:", *sorted(f"{r} {a}" for r, a in unused), sep="\n  ")
    deployed = sorted(deploy_actions(stack["endpoint"]))
    print(f"the deployer's actions (site.yml, its tags, the migration): {len(deployed)}", *deployed, sep="\n  ")
    assert {"ecs:RunTask", "iam:PassRole"} <= set(deployed)  # the migration's one-off task, started by the deploy
    assert proof.denied == [], "calls the role's policy does not allow:\n" + "\n".join(proof.denied)
    assert unused == set(GRANTED_UNUSED), "a grant no call uses (remove it, or name why it stays in GRANTED_UNUSED)"
    for job in ("webserver", "daemon", "run"):  # each role acted as itself, and only the daemon started runs
        assert any(role == f"{PROJECT}-{job}-task" for role, _ in proof.observed), job
    assert {role for role, action in proof.observed if action == "ecs:RunTask"} == {f"{PROJECT}-daemon-task"}
    # What was proven here is what production gets: the same templates, rendered for the production inventory.
    launcher = yaml.safe_load((ROOT / "inventory/production/group_vars/all/dagster_ecs.yml").read_text())
    for suffix, (template, job) in ROLE_TEMPLATES.items():
        values = {**EXAMPLE_VALUES, "iam_task_kind": job}
        values["iam_ecs_run_launcher"] = launcher["dagster_ecs_run_launcher"] == "ecs"
        assert shape(proof.documents[f"{PROJECT}-{suffix}"]) == shape([render_template(template, **values)]), suffix


def test_down_stops_every_local_process(stack):
    status = json.loads((stack["runtime"] / "status.json").read_text())
    pids = [status["pid"]] + [task["pid"] for task in status["services"].values()]
    down = run_playbook("playbooks/down.yml", extra_vars=stack["extra"])
    assert down.returncode == 0, down.output[-3000:]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert request(f"{stack['url']}/health")[0] is None, "nginx still answers after make down"
    postgres = stack["runtime"] / "postgres" / "data" / "postmaster.pid"
    assert not postgres.exists(), "the local PostgreSQL still runs after make down"

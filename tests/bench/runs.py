"""Run launch benchmark: orders_job through the ECS run launcher, beside the same job through the default one.

    python tests/bench/runs.py [--state .state] [--runs 3]   # on the running offline rehearsal (make rehearsal)

ECS launcher (what production runs, offline): Dagster's own GraphQL client, through the load
balancer URL with basic auth, submits ``orders_job``; the daemon's queued run coordinator hands
it to ``GuardedEcsRunLauncher``, which calls RunTask; the local runtime starts the task. Printed
per run and as medians: submit -> QUEUED, -> the run's ECS task RUNNING, -> STARTED (the run
worker executes), -> SUCCESS.

Baseline, measured in the same run: the same job of the same DAGs through Dagster's default run
launcher on an ephemeral local instance (``dagster job execute``: one process that imports the
code and executes the job, no queue, no task), from its start to its exit. The difference is what
a run pays for its own task: the queue's poll, the task's start (DAG sync, imports) and the
launcher's bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support.aws_inventory import clients  # noqa: E402

PROJECT = "dagster-ecs"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def ecs_run(client, ecs, cluster: str, family: str) -> dict[str, float]:
    """One run through the ECS launcher: seconds from submit to each milestone."""
    marks: dict[str, float] = {}
    started = time.monotonic()
    run_id = client.submit_job_execution(
        "orders_job", repository_location_name="dags", repository_name="__repository__"
    )
    marks["submitted"] = time.monotonic() - started
    deadline = started + 300
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        now = time.monotonic() - started
        if status != "NOT_STARTED":
            marks.setdefault("QUEUED", now)
        if status in ("STARTED", *FINISHED):
            marks.setdefault("STARTED", now)
        if "task RUNNING" not in marks:
            arns = ecs.list_tasks(cluster=cluster, family=family)["taskArns"]
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"] if arns else []
            mine = [t for t in tasks if {"key": "dagster/run_id", "value": run_id} in t.get("tags", [])]
            if mine and mine[0]["lastStatus"] in ("RUNNING", "STOPPED"):
                marks["task RUNNING"] = now
        if status in FINISHED:
            marks[status] = now
            return marks
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not finish within 300 s: {marks}")


def default_run(dags: Path) -> float:
    """The same job through the default run launcher (ephemeral instance): seconds from start to exit."""
    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": home, "PYTHONPATH": str(dags)}
        command = [
            str(Path(sys.executable).parent / "dagster"),
            "job",
            "execute",
            "-m",
            "definitions",
            "-j",
            "orders_job",
        ]
        started = time.monotonic()
        done = subprocess.run(command, cwd=dags, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the baseline run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str]) -> int:
    from dagster_graphql import DagsterGraphQLClient

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default=str(ROOT / ".state"), help="the offline profile's state directory")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    outputs_file = Path(args.state) / "offline" / "outputs.json"
    if not outputs_file.exists():
        print(f"no offline rehearsal in {args.state}: run `make rehearsal` first", file=sys.stderr)
        return 2
    outputs = json.loads(outputs_file.read_text())
    aws = clients(outputs.get("aws_endpoint_url") or "http://127.0.0.1:4566")
    secret = aws("secretsmanager").get_secret_value(SecretId=f"{PROJECT}/basic-auth")["SecretString"]
    creds = json.loads(secret)
    host, port = outputs["load_balancer_url"].removeprefix("http://").split(":")
    client = DagsterGraphQLClient(
        host, port_number=int(port), use_https=False, auth=(creds["username"], creds["password"])
    )
    ecs = aws("ecs")
    cluster, family = PROJECT, f"{PROJECT}-run"
    print(f"orders_job, {args.runs} run(s) each way, on the offline rehearsal at {outputs['load_balancer_url']}")
    results = []
    for n in range(args.runs):
        marks = ecs_run(client, ecs, cluster, family)
        results.append(marks)
        print(f"  ECS launcher run {n + 1}: " + ", ".join(f"{name} {value:.1f}s" for name, value in marks.items()))
    baselines = []
    for n in range(args.runs):
        baselines.append(default_run(ROOT / "dags"))
        print(f"  default launcher run {n + 1}: {baselines[-1]:.1f}s")
    print()
    print(f"{'median seconds from submit':<34}{'ECS launcher':>14}{'default launcher':>18}")
    for name in ("QUEUED", "task RUNNING", "STARTED", "SUCCESS"):
        values = [marks[name] for marks in results if name in marks]
        baseline = f"{statistics.median(baselines):>18.1f}" if name == "SUCCESS" else f"{'-':>18}"
        shown = f"{statistics.median(values):>14.1f}" if values else f"{'-':>14}"
        print(f"{'-> ' + name:<34}{shown}{baseline}")
    failed = [marks for marks in results if "SUCCESS" not in marks]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

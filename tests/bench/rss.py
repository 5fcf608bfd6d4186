"""RSS of each local task after start-up (goal: at most 450 MB per task, the 512 MB Fargate size with room).

    python tests/bench/rss.py [STATE_DIR] [--seconds 75]   # default .state/offline/runtime (after make rehearsal)

Each task is sampled once a second (median and peak): while a new DAG version's code server
starts, the old one still serves for a few seconds, and the daemon refreshes its workspace every
minute, so one snapshot is not enough. The detailed breakdown is the last sample, with the
proportional set size (PSS) beside the RSS.

A task is every process of its session (supervisord, nginx, dagster-webserver or
dagster-daemon, their code servers, the sidecar), as a container's memory is. The baseline
printed beside it is the same measure for a bare ``dagster-webserver`` or ``dagster-daemon``
process of the same task (what the seed's container would have run, without nginx, the
sidecar or supervisord).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from dagster_ecs_container import codeservers
from dagster_ecs_container.memory import pss_kb

GOAL_MB = 450


def processes() -> list[dict]:
    return [
        {"pid": p.pid, "ppid": p.ppid, "sid": p.sid, "rss": p.rss_kb, "cmd": p.cmd}
        for p in codeservers.processes()
        if p.state != "Z"
    ]


def descendants(root: int, procs: list[dict]) -> list[dict]:
    children = {root}
    changed = True
    while changed:
        changed = False
        for proc in procs:
            if proc["ppid"] in children and proc["pid"] not in children:
                children.add(proc["pid"])
                changed = True
    return [p for p in procs if p["pid"] in children]


def sample(status: dict, seconds: float) -> dict[str, list[float]]:
    """Each task's total RSS (MB) once a second for ``seconds``."""
    totals: dict[str, list[float]] = {service: [] for service in status["services"]}
    deadline = time.monotonic() + seconds
    while True:
        procs = processes()
        for service, task in status["services"].items():
            totals[service].append(sum(p["rss"] for p in procs if p["sid"] == task["pid"]) / 1024)
        if time.monotonic() >= deadline:
            return totals
        time.sleep(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", nargs="?", default=".state/offline/runtime")
    parser.add_argument(
        "--seconds", type=float, default=75, help="how long to sample (the daemon refreshes its workspace every 60 s)"
    )
    args = parser.parse_args(argv)
    state = Path(args.state)
    try:
        status = json.loads((state / "status.json").read_text())
    except FileNotFoundError:
        print(f"no local runtime status in {state}: run `make rehearsal` first", file=sys.stderr)
        return 2
    totals = sample(status, args.seconds)
    print(f"sampled every second for {args.seconds:.0f}s (MB):")
    print(f"{'task':<12}{'median':>8}{'peak':>7}")
    for service, values in sorted(totals.items()):
        print(f"{service:<12}{statistics.median(values):>8.0f}{max(values):>7.0f}")
    print()
    procs = processes()
    worst = 0.0
    print(f"{'task':<12}{'RSS MB':>8}{'goal':>7}   baseline (bare dagster process + code server)")
    for service, task in sorted(status["services"].items()):
        members = [p for p in procs if p["sid"] == task["pid"]]
        total = sum(p["rss"] for p in members) / 1024
        bare = next((p for p in members if "dagster-webserver" in p["cmd"] or "dagster-daemon run" in p["cmd"]), None)
        code = {p["pid"]: p for p in members if "dagster api grpc" in p["cmd"]}  # the daemon's is not its child
        if bare:
            code.update({p["pid"]: p for p in descendants(bare["pid"], procs)})
        baseline = sum(p["rss"] for p in code.values()) / 1024
        worst = max(worst, total)
        pss = sum(pss_kb(p["pid"]) for p in members) / 1024
        print(f"{service:<12}{total:>8.0f}{GOAL_MB:>7}   {baseline:.0f} MB   (PSS {pss:.0f} MB)")
        for proc in sorted(members, key=lambda p: -p["rss"]):
            print(f"{'':<4}{proc['rss'] / 1024:>8.0f}  {proc['cmd'][:90]}")
    worst = max(statistics.median(values) for values in totals.values())
    peak = max(max(values) for values in totals.values())
    verdict = "within" if worst <= GOAL_MB else "OVER"
    print(
        f"largest task: median {worst:.0f} MB, {verdict} the {GOAL_MB} MB goal; peak {peak:.0f} MB "
        "(peaks: while a new DAG version's code server starts, the old one still serves, for a few seconds)"
    )
    return 0 if worst <= GOAL_MB else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

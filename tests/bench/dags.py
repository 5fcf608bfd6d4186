"""DAG deploy benchmarks: each figure printed with its baseline, measured in the same run.

    python tests/bench/dags.py [--files 1000] [--skip-live]

Part 1, on a private emulator (started and stopped here), with N DAG files:
  * first publish (the dags stage through ansible-playbook; validation off, it is not about I/O);
  * no-change publish: S3 requests (goal: the manifest read only) and wall time;
  * one changed file: uploads (goal: 1);
  * first full sync (the container's DagSync) against ``aws s3 sync`` of the same files (goal <= 0.5x);
  * no-change poll and one-changed-file sync, in requests, against ``aws s3 sync``.
Requests are counted from the emulator's own access log.

Part 2, on the running offline rehearsal (after ``make rehearsal``; skipped if none answers):
  time from the start of ``ansible-playbook site.yml --tags dags`` to the new asset in GraphQL
  (goal <= 15 s), against the same command's wall time when nothing changed (its floor).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support.emulator import OFFLINE_CREDENTIALS, wait_for_health  # noqa: E402
from support.net import free_port  # noqa: E402
from support.playbook import run_playbook  # noqa: E402
from support.rehearsal import Rehearsal  # noqa: E402

BIN = Path(sys.executable).parent
BUCKET = "dags-bench"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some status lines
ASSET = '''import dagster as dg


@dg.asset(group_name="bench")
def {name}() -> int:
    """Benchmark asset {n}."""
    return {n}
'''


def session():
    import boto3

    return boto3.session.Session(
        aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="ap-southeast-2",
    )


class RequestLog:
    """Counts the emulator's requests to the bucket from its access log."""

    def __init__(self, path: Path):
        self.path, self.mark = path, 0

    def start(self):
        self.mark = self.path.stat().st_size

    def count(self, prefix: str = "") -> dict[str, int]:
        with open(self.path, "rb") as handle:
            handle.seek(self.mark)
            lines = handle.read().decode(errors="replace").splitlines()
        counts: dict[str, int] = {}
        for line in (ANSI.sub("", raw) for raw in lines):
            if f"/{BUCKET}" not in line or '"' not in line:
                continue
            method, target = line.split('"')[1].split()[:2]
            if prefix and f"/{BUCKET}/{prefix}" not in target and f"prefix={prefix}" not in target:
                continue
            counts[method] = counts.get(method, 0) + 1
        return counts


def timed(function):
    started = time.monotonic()
    result = function()
    return result, time.monotonic() - started


def aws_cli(endpoint: str, *args: str) -> None:
    env = dict(os.environ, **OFFLINE_CREDENTIALS)
    subprocess.run([str(BIN / "aws"), "--endpoint-url", endpoint, *args], check=True, env=env, capture_output=True)


def part_one(files: int, work: Path) -> None:
    from dagster_ecs_container.sync import DagSync

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = work / "emulator.log"
    with open(log_path, "wb") as log:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "dagster_ecs_emulator", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_for_health(endpoint)
        s3 = session().client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
        requests = RequestLog(log_path)

        dags = work / "dags"
        shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        bench = dags / "pipelines" / "bench"
        bench.mkdir()
        (bench / "__init__.py").write_text("")
        for n in range(files - len(list(dags.rglob("*.py")))):
            (bench / f"asset_{n:04d}.py").write_text(ASSET.format(name=f"bench_{n:04d}", n=n))
        count = len([p for p in dags.rglob("*") if p.is_file()])
        extra = {
            "dagster_ecs_aws_endpoint_url": endpoint,
            "storage_bucket": BUCKET,
            "dagster_ecs_dags_dir": str(dags),
            "dags_validate": False,
        }

        def publish():
            run = run_playbook("playbooks/dags.yml", extra_vars=extra)
            assert run.returncode == 0, run.output[-3000:]
            return run

        print(f"\n== {count} DAG files, private emulator at {endpoint}")
        requests.start()
        _, first = timed(publish)
        print(f"first publish           {first:6.2f}s  {requests.count()}")
        requests.start()
        _, again = timed(publish)
        no_change = requests.count()
        print(f"no-change publish       {again:6.2f}s  S3 requests {no_change}  (goal: GET of the manifest only)")
        target = bench / "asset_0000.py"
        target.write_text(target.read_text() + "\n# changed\n")
        requests.start()
        _, one = timed(publish)
        changed = requests.count("dags/objects/")
        print(f"one file changed        {one:6.2f}s  object uploads {changed.get('PUT', 0)} (goal 1)")

        # The same files, plainly, for the baseline: what the seed's container ran every 10 minutes.
        aws_cli(endpoint, "s3", "sync", "--quiet", str(dags), f"s3://{BUCKET}/plain/")

        live = work / "task" / "dags"
        sync = DagSync(s3, BUCKET, "dags/", live)
        baseline_dir = work / "baseline"

        def compare(label: str, goal: str) -> None:
            """Our sync's next poll against `aws s3 sync` of the same files, both timed and counted."""
            requests.start()
            _, ours = timed(sync.poll)
            ours_requests = requests.count("dags/")
            requests.start()
            _, theirs = timed(
                lambda: aws_cli(endpoint, "s3", "sync", "--quiet", f"s3://{BUCKET}/plain/", str(baseline_dir))
            )
            print(
                f"{label:<23} {ours:6.2f}s  {ours_requests} ({goal})   baseline aws s3 sync {theirs:6.2f}s "
                f"{requests.count('plain/')}   ratio {ours / theirs:.2f}"
            )

        compare("first full sync", "goal: ratio <= 0.5")
        compare("no-change poll", "goal: 1 request")
        target.write_text(target.read_text() + "\n# changed again\n")
        publish()
        aws_cli(endpoint, "s3", "sync", "--quiet", str(dags), f"s3://{BUCKET}/plain/")
        compare("one changed file synced", "goal: manifest + 1 download")
    finally:
        emulator.terminate()
        emulator.wait(10)


def part_two(work: Path) -> None:
    try:
        rehearsal = Rehearsal()
    except (OSError, KeyError, ValueError):
        print("\n== live deploy: skipped, no offline rehearsal (run `make rehearsal` first)")
        return
    url, assets = rehearsal.url, rehearsal.assets

    if not assets():
        print(f"\n== live deploy: skipped, no Dagster answers at {url} (run `make rehearsal` first)")
        return
    dags = work / "live-dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"bench_live_{int(time.time())}"
    (dags / "pipelines" / f"{name}.py").write_text(ASSET.format(name=name, n=1))

    def deploy(directory: Path):
        return run_playbook("site.yml", "--tags", "dags", extra_vars={"dagster_ecs_dags_dir": str(directory)})

    print("\n== live deploy on the offline rehearsal at", url)
    _, floor = timed(lambda: deploy(ROOT / "dags"))
    started = time.monotonic()
    run = deploy(dags)
    assert run.returncode == 0, run.output[-3000:]
    published = time.monotonic() - started
    while name not in assets():
        if time.monotonic() - started > 120:
            print("new asset not visible after 120 s")
            break
        time.sleep(0.25)
    visible = time.monotonic() - started
    print(
        f"--tags dags to new asset in GraphQL {visible:6.2f}s (goal <= 15)   publish part {published:6.2f}s   "
        f"baseline: the same command, nothing changed {floor:6.2f}s"
    )
    restore = deploy(ROOT / "dags")  # put the rehearsal's DAGs back
    assert restore.returncode == 0, restore.output[-3000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dags-bench-") as work:
        part_one(args.files, Path(work))
        if not args.skip_live:
            part_two(Path(work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

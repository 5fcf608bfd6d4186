"""DAG dependency benchmarks on the running offline rehearsal: each figure with its baseline, same run.

    python tests/bench/deps.py [--package inflection==0.5.1] [--heavy pandas==2.2.3] [--skip-image]

Needs ``make rehearsal`` (skipped when no Dagster answers) and a package index for uv (PyPI by
default; the layer cache is a fresh temporary directory, so the downloads are part of the figure).
Each figure is the time from the start of ``ansible-playbook site.yml --tags dags`` to the new asset
in GraphQL:

  1. code-only change with a ``requirements.txt`` whose layers are already in the bucket, against the
     same change with no ``requirements.txt`` (this feature unused; goal: within 1.2x);
  2. adding one pure-Python package (goal <= 60 s);
  3. adding pandas (goal <= 180 s), and then a code-only change with pandas live (two pandas code
     servers, unless the task is short of memory for them: the play then says the old one stopped
     first), each with the webserver task's memory (every process of its session, as rss.py measures
     a task) sampled every 0.5 s during the deploy: median and peak (the task has 512 MB on Fargate);
  4. the baseline for 2 and 3, the image path in its parts: the Dockerfile's dependency step
     (``python -m venv`` + ``pip install --no-compile -c constraints container/ <package>``, no pip
     cache, as in the image build) and the roll (``site.yml --tags ecs`` with a new image tag, until
     both services run the new revision and /health answers). The push to ECR is not measured (no
     registry offline).

The rehearsal's DAGs are published back at the end; the image roll is rolled back to the inventory's tag.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))  # rss.py

from dagster_ecs_container.memory import pss_kb  # noqa: E402
from rss import processes  # noqa: E402
from support.playbook import run_playbook  # noqa: E402
from support.rehearsal import Rehearsal  # noqa: E402

ASSET = '''import dagster as dg
{imports}

@dg.asset(group_name="bench_deps")
def {name}() -> str:
    """Benchmark asset: {uses}."""
    return str({uses})
'''
LAYER = re.compile(r"(cp3\d+-\w+-\w+) ([\d.]+) kB (built in [\d.]+ s|reused)(, uploaded)?")


class Memory(threading.Thread):
    """The webserver task's memory (MB), every 0.5 s, until stopped: the sum of its processes' RSS, and of their
    PSS (what the release budgets with: memory.py)."""

    def __init__(self, rehearsal: Rehearsal):
        super().__init__(daemon=True)
        self.rehearsal = rehearsal
        self.rss: list[float] = []
        self.pss: list[float] = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            sid = self.rehearsal.services()["webserver"]["pid"]
            members = [p for p in processes() if p["sid"] == sid]
            self.rss.append(sum(p["rss"] for p in members) / 1024)
            self.pss.append(sum(pss_kb(p["pid"], p["rss"]) for p in members) / 1024)
            self.done.wait(0.5)

    def stop(self) -> str:
        self.done.set()
        self.join()
        if not self.rss:
            return "no samples"
        return (
            f"RSS median {statistics.median(self.rss):.0f} MB, peak {max(self.rss):.0f} MB; "
            f"PSS median {statistics.median(self.pss):.0f} MB, peak {max(self.pss):.0f} MB (task: 512 MB)"
        )


def deploy(rehearsal: Rehearsal, dags: Path, asset: str, cache: Path) -> tuple[float, str]:
    """Seconds from the start of --tags dags to ``asset`` in GraphQL, and the play's layer summary (and whether the
    task stopped the old code server first, short of memory for two)."""
    started = time.monotonic()
    run = run_playbook(
        "site.yml", "--tags", "dags", extra_vars={"dagster_ecs_dags_dir": str(dags), "dags_layer_cache": str(cache)}
    )
    if run.returncode != 0:
        raise SystemExit(f"--tags dags failed:\n{run.output[-3000:]}")
    while asset not in rehearsal.assets():
        if time.monotonic() - started > 600:
            raise SystemExit(f"{asset} not in GraphQL after 600 s")
        time.sleep(0.25)
    layers = "; ".join(f"{p} {kb} kB {how}{up}" for p, kb, how, up in LAYER.findall(run.output)) or "no layers"
    stopped = re.search(r"stopped first \(a short reload window\): (.+? vs limit \d+ MB)", run.output)
    if stopped:
        layers += f"; old code server stopped first ({stopped.group(1)})"
    return time.monotonic() - started, layers


def variant(base: Path, work: Path, name: str, requirements: list[str], imports: list[str], uses: str) -> Path:
    dags = work / name
    shutil.copytree(base, dags, ignore=shutil.ignore_patterns("__pycache__"))
    if requirements:
        (dags / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (dags / "pipelines" / f"{name}.py").write_text(
        ASSET.format(name=name, imports="\n".join(f"import {module}" for module in imports), uses=uses)
    )
    return dags


def image_dependency_step(work: Path, package: str) -> float:
    """The Dockerfile's build stage for the same change: a fresh venv and pip, no cache."""
    venv = work / f"image-venv-{int(time.time() * 1000)}"
    source = work / "container-src"  # a copy: pip builds in the source tree (container/build/)
    if not source.exists():
        shutil.copytree(ROOT / "container", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    isolated = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # the build has no pip.conf of this machine
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-cache-dir",
            "--no-compile",
            "-c",
            str(ROOT / "requirements" / "constraints.txt"),
            str(source),
            package,
        ],
        check=True,
        env=isolated,
    )
    seconds = time.monotonic() - started
    shutil.rmtree(venv)
    return seconds


def image_roll(rehearsal: Rehearsal, tag: str) -> float:
    """site.yml --tags ecs with a new image tag, until both services run the new revision and /health answers."""
    before = {name: task["task_definition"] for name, task in rehearsal.services().items()}
    started = time.monotonic()
    run = run_playbook("site.yml", "--tags", "ecs", extra_vars={"dagster_ecs_image_tag": tag})
    if run.returncode != 0:
        raise SystemExit(f"--tags ecs failed:\n{run.output[-3000:]}")
    while True:
        now = rehearsal.services()
        rolled = all(now[n]["task_definition"] != before[n] and now[n]["running"] for n in before)
        if rolled and rehearsal.healthy():
            return time.monotonic() - started
        if time.monotonic() - started > 600:
            raise SystemExit("the services did not roll within 600 s")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="inflection==0.5.1", help="the pure-Python package added")
    parser.add_argument("--module", default="inflection", help="what the asset imports from it")
    parser.add_argument("--heavy", default="pandas==2.2.3", help="the heavy package added")
    parser.add_argument("--skip-image", action="store_true", help="do not measure the image path")
    args = parser.parse_args()
    try:
        rehearsal = Rehearsal()
    except (OSError, KeyError, ValueError) as exc:
        print(f"skipped: no offline rehearsal ({exc}); run `make rehearsal` first")
        return 0
    if not rehearsal.assets():
        print(f"skipped: no Dagster answers at {rehearsal.url}; run `make rehearsal` first")
        return 0
    stamp = int(time.time())
    rows = []
    with tempfile.TemporaryDirectory(prefix="deps-bench-") as tmp:
        work = Path(tmp)
        cache = work / "layer-cache"
        base = ROOT / "dags"
        try:
            plain = variant(base, work, f"code_only_{stamp}", [], [], "1")
            seconds_plain, _ = deploy(rehearsal, plain, f"code_only_{stamp}", cache)

            light = variant(base, work, f"light_{stamp}", [args.package], [args.module], f"{args.module}.__name__")
            seconds_light, layers_light = deploy(rehearsal, light, f"light_{stamp}", cache)

            again = variant(light, work, f"code_again_{stamp}", [], [], "2")
            seconds_again, layers_again = deploy(rehearsal, again, f"code_again_{stamp}", cache)

            memory = Memory(rehearsal)
            memory.start()
            heavy = variant(again, work, f"heavy_{stamp}", [args.package, args.heavy], ["pandas"], "pandas.__version__")
            seconds_heavy, layers_heavy = deploy(rehearsal, heavy, f"heavy_{stamp}", cache)
            time.sleep(5)  # the old code server's last seconds
            during = memory.stop()
            memory = Memory(rehearsal)
            memory.start()
            heavy_again = variant(heavy, work, f"heavy_again_{stamp}", [], [], "3")
            seconds_heavy_again, layers_heavy_again = deploy(rehearsal, heavy_again, f"heavy_again_{stamp}", cache)
            time.sleep(5)
            during_again = memory.stop()
        finally:
            restore = run_playbook("site.yml", "--tags", "dags", extra_vars={"dags_layer_cache": str(cache)})
            print("rehearsal's dags/ published back" if restore.returncode == 0 else restore.output[-2000:])

        rows.append(
            (
                "code-only change, layers reused",
                seconds_again,
                f"{seconds_plain:.1f} s without requirements.txt "
                f"(ratio {seconds_again / seconds_plain:.2f}, goal <= 1.2)",
                layers_again,
            )
        )
        rows.append(
            (
                f"code-only change, {args.heavy} live",
                seconds_heavy_again,
                f"{seconds_plain:.1f} s without requirements.txt",
                layers_heavy_again,
            )
        )
        image_light = image_heavy = roll = None
        if not args.skip_image:
            image_light = image_dependency_step(work, args.package)
            image_heavy = image_dependency_step(work, args.heavy)
            roll = image_roll(rehearsal, f"bench-{stamp}")
            image_roll(rehearsal, f"bench-{stamp}-back")  # a new revision again (the tag is only a label offline)

        def image(step):
            return (
                "not measured"
                if step is None
                else f"{step + roll:.1f} s image path ({step:.1f} build + {roll:.1f} roll, no push)"
            )

        rows.append((f"add {args.package}", seconds_light, f"goal <= 60 s; {image(image_light)}", layers_light))
        rows.append((f"add {args.heavy}", seconds_heavy, f"goal <= 180 s; {image(image_heavy)}", layers_heavy))
    print(f"\n{'change':<38}{'--tags dags to asset':>22}   baseline")
    for name, seconds, baseline, layers in rows:
        print(f"{name:<38}{seconds:>20.1f} s   {baseline}\n{'':<40}layers: {layers}")
    print(f"\nwebserver task memory, sampled every 0.5 s: adding {args.heavy}: {during}")
    print(f"webserver task memory, sampled every 0.5 s: a code-only change with {args.heavy} live: {during_again}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

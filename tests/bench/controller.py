"""Controller CPU of ansible-playbook with the project's ansible.cfg, beside Ansible's default poll interval.

    python tests/bench/controller.py [--tasks 30] [--rounds 3] [--skip-live]

ansible.cfg sets ``internal_poll_interval``: how long the controller sleeps between two looks at its
workers while a task runs. Ansible's default, 0.001 s, wakes the controller a thousand times a second
for as long as each module runs; on a machine whose CPUs are busy (two deploys at once, or `make test`),
those wake-ups take CPU from the modules themselves.

The baseline, measured in the same run and alternated with it: the same ansible.cfg without that line
(a copy, in a directory that links to the repository's files, so every relative path resolves alike).
Printed per configuration: the median wall time and the median CPU time of ansible-playbook and every
process under it (controller, workers, modules).

Part 1, on a private emulator (started and stopped here): a play of N AWS tasks
(``amazon.aws.aws_caller_info``) and N controller-only tasks (``ansible.builtin.assert``).

Part 2, on the running offline rehearsal (after ``make rehearsal``; skipped if none answers): a no-op
``site.yml`` (nothing changed: every stage looks and changes nothing).
"""

from __future__ import annotations

import argparse
import configparser
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support.emulator import OFFLINE_CREDENTIALS, spawn_emulator  # noqa: E402
from support.playbook import RECAP, playbook_environment  # noqa: E402
from support.rehearsal import Rehearsal  # noqa: E402

BIN = Path(sys.executable).parent
SETTING = "internal_poll_interval"


def configured() -> str:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "ansible.cfg")
    return config.get("defaults", SETTING, fallback="")


def baseline_config(workdir: Path) -> Path:
    """ansible.cfg without SETTING, in a directory that links to every top-level entry of the repository."""
    for entry in ROOT.iterdir():
        if entry.name != "ansible.cfg":
            (workdir / entry.name).symlink_to(entry)
    lines = (ROOT / "ansible.cfg").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.replace(" ", "").startswith(f"{SETTING}=")]
    assert len(kept) == len(lines) - 1, f"ansible.cfg has no single {SETTING} line"
    (workdir / "ansible.cfg").write_text("".join(kept))
    return workdir / "ansible.cfg"


def run(command: list[str], config: Path | None, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (ansible-playbook and every process it waited for) of one run; it must succeed."""
    environment = playbook_environment({**env, **({"ANSIBLE_CONFIG": str(config)} if config else {})})
    if not config:
        environment.pop("ANSIBLE_CONFIG", None)  # ansible.cfg of the working directory, as users run it
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not RECAP.search(proc.stdout):
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(title: str, command: list[str], baseline: Path, rounds: int, env: dict[str, str]) -> None:
    """Alternate the two configurations ``rounds`` times; print their medians and the difference."""
    figures: dict[str, list[tuple[float, float]]] = {"project": [], "default": []}
    run(command, None, env)  # warm the file cache and the emulator; not counted
    for _ in range(rounds):
        figures["project"].append(run(command, None, env))
        figures["default"].append(run(command, baseline, env))
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in figures.items()
    }
    print(f"\n{title} (median of {rounds})")
    labels = {
        "project": f"{SETTING} = {configured()} (ansible.cfg)",
        "default": f"{SETTING} = 0.001 (Ansible's default)",
    }
    for name, (wall, cpu) in medians.items():
        print(f"  {labels[name]:45s} wall {wall:6.1f} s   CPU {cpu:6.1f} s")
    (wall, cpu), (base_wall, base_cpu) = medians["project"], medians["default"]
    share = 100 * (cpu - base_cpu) / base_cpu
    print(f"  difference: CPU {cpu - base_cpu:+.1f} s ({share:+.0f} %), wall {wall - base_wall:+.1f} s")


def micro_playbook(path: Path, endpoint: str, tasks: int) -> None:
    lines = [
        "- name: Controller benchmark",
        "  hosts: localhost",
        "  connection: local",
        "  gather_facts: false",
        "  tasks:",
    ]
    for n in range(tasks):
        lines += [
            f"    - name: AWS call {n}",
            "      amazon.aws.aws_caller_info:",
            f"        endpoint_url: {endpoint}",
            "        region: ap-southeast-2",
            f"    - name: Controller-only task {n}",
            "      ansible.builtin.assert:",
            "        that: true",
            "        quiet: true",
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30, help="AWS tasks (and as many controller-only ones) in part 1")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, alternated")
    parser.add_argument("--skip-live", action="store_true", help="skip part 2 (the rehearsal's no-op site.yml)")
    args = parser.parse_args()
    if not configured():
        raise SystemExit(f"ansible.cfg sets no {SETTING}: nothing to compare")
    print(f"{os.cpu_count()} CPUs; {SETTING}: {configured()} in ansible.cfg, 0.001 by default")
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        work = Path(tmp)
        (work / "mirror").mkdir()
        baseline = baseline_config(work / "mirror")
        emulator = spawn_emulator(work)
        try:
            playbook = work / "micro.yml"
            micro_playbook(playbook, emulator.endpoint, args.tasks)
            command = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)]
            compare(
                f"Part 1: {args.tasks} AWS tasks and {args.tasks} controller-only tasks",
                command,
                baseline,
                args.rounds,
                OFFLINE_CREDENTIALS,
            )
        finally:
            emulator.stop()
        if args.skip_live:
            return 0
        try:
            Rehearsal()
        except (OSError, KeyError, ValueError) as error:
            print(f"\nPart 2 skipped: no running rehearsal ({error.__class__.__name__}); run make rehearsal first")
            return 0
        compare(
            "Part 2: a no-op site.yml on the running rehearsal",
            [str(BIN / "ansible-playbook"), "site.yml"],
            baseline,
            args.rounds,
            {},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

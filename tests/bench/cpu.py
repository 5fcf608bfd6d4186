"""Where a command's CPU time goes, by kind of process: Linux process accounting, as root.

    python tests/bench/cpu.py [--keep FILE] -- make test
    python tests/bench/cpu.py --read FILE          # a record file kept before

For the command's run the kernel's process accounting (acct(2)) is on: every process that ends on the
machine meanwhile, the command's and any other, writes one record with its own CPU time (not its
children's), its pid, its parent's pid and its command name (15 characters). A process still running
when the command ends writes none, so nothing it left running is counted. Each record is put in a
kind by its name and its ancestors' (pids are reused: a parent is the next record of its pid to end,
started no later than the child):

- Ansible's controller and workers (``ansible-playbook`` and its forks), its modules (``python``
  under a worker's ``sh``: AnsiballZ), the helper commands its workers run;
- Dagster's processes (webserver, daemon, code servers, each run's task, the sidecars, the checks),
  the local ECS runtime (the ``python`` that starts them), PostgreSQL, nginx, Chromium, Docker;
- the tools ``make test`` runs (ansible-lint, ansible-test, molecule's own process);
- every other ``python``: the emulators, pytest and its workers.

Printed: CPU seconds, share and count of processes per kind, and the command's wall time. No baseline:
this is where the time goes, not a claim that something is faster.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RECORD = struct.Struct("<BBHIIIIIIf8H16s")  # struct acct_v3 (linux/acct.h): 64 bytes
AHZ = 100  # the records' clock ticks per second
AFORK = 0x01  # forked, never exec'd
ACCT_V3 = 3


@dataclass
class Process:
    index: int  # the order it ended in
    pid: int
    ppid: int
    started: int  # epoch seconds
    cpu: float  # seconds, user + system, its own
    name: str
    forked: bool


def _comp(value: int) -> int:
    """comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def parse(data: bytes) -> list[Process]:
    processes = []
    for index, offset in enumerate(range(0, len(data) - RECORD.size + 1, RECORD.size)):
        fields = RECORD.unpack_from(data, offset)
        flag, version, _tty, _exit, _uid, _gid, pid, ppid, started, _elapsed, utime, stime = fields[:12]
        if version & 0x0F != ACCT_V3:
            raise ValueError(f"record {index}: version {version}, not acct v3")
        name = fields[-1].split(b"\0", 1)[0].decode(errors="replace")
        cpu = (_comp(utime) + _comp(stime)) / AHZ
        processes.append(Process(index, pid, ppid, started, cpu, name, bool(flag & AFORK)))
    return processes


class Tree:
    def __init__(self, processes: list[Process]) -> None:
        self.by_pid: dict[int, list[Process]] = collections.defaultdict(list)
        for process in processes:
            self.by_pid[process.pid].append(process)

    def parent(self, process: Process) -> Process | None:
        for candidate in self.by_pid.get(process.ppid, ()):
            if candidate.index > process.index and candidate.started <= process.started + 1:
                return candidate
        return None

    def names(self, process: Process, depth: int = 6) -> list[str]:
        """Its name, then its parent's, and so on."""
        names = []
        current: Process | None = process
        while current is not None and len(names) < depth:
            names.append(current.name)
            current = self.parent(current)
        return names


TOOLS = ("ansible-lint", "ansible-test", "molecule")
POSTGRES = ("postgres", "initdb", "pg_ctl", "psql", "createdb")


def kind(names: list[str], starts_dagster: bool = False) -> str:
    """The kind of a process from its name and its ancestors' (``names``, itself first)."""
    me, ancestors = names[0], names[1:]
    if me.startswith("ansible-playboo"):
        return "Ansible controller and workers"
    if "ansible-playboo" in ancestors[:3]:
        return "Ansible modules (AnsiballZ)" if me.startswith("python") else "Ansible workers' helper commands"
    if me.startswith("dagster") or any(name.startswith("dagster") for name in ancestors[:3]):
        return "Dagster processes"
    if me.startswith("python") and starts_dagster:
        return "local ECS runtime"
    if me in POSTGRES or "postgres" in ancestors[:1]:
        return "PostgreSQL"
    for prefix, label in (("nginx", "nginx"), ("chrom", "Chromium"), ("docker", "Docker"), ("containerd", "Docker")):
        if me.startswith(prefix):
            return label
    for tool in TOOLS:
        if tool in names:
            return f"{tool} and its children"
    if me.startswith(("python", "pytest")):
        return "other Python (emulators, pytest)"
    return "other commands"


def breakdown(processes: list[Process]) -> dict[str, tuple[float, int]]:
    tree = Tree(processes)
    starts_dagster = {
        id(parent) for process in processes if process.name.startswith("dagster") and (parent := tree.parent(process))
    }
    seconds: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for process in processes:
        label = kind(tree.names(process), id(process) in starts_dagster)
        seconds[label] += process.cpu
        counts[label] += 1
    return {label: (seconds[label], counts[label]) for label, _ in seconds.most_common()}


def report(processes: list[Process], wall: float | None = None) -> str:
    table = breakdown(processes)
    total = sum(cpu for cpu, _ in table.values())
    lines = [
        f"{len(processes)} processes ended, {total:.0f} CPU-s" + (f" in {wall:.0f} s of wall time" if wall else "")
    ]
    for label, (cpu, count) in table.items():
        lines.append(f"{cpu:8.0f} CPU-s {100 * cpu / total if total else 0:5.1f} % {count:8d} processes  {label}")
    return "\n".join(lines)


def _acct(path: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.acct(path.encode() if path else None) != 0:
        error = ctypes.get_errno()
        raise SystemExit(
            f"acct({path}) failed: {os.strerror(error)}"
            " (process accounting needs root and a kernel built with BSD_PROCESS_ACCT)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", type=Path, help="keep the record file here (default: a temporary file, removed)")
    parser.add_argument("--read", type=Path, help="report on a record file kept before; run nothing")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = parser.parse_args()
    if args.read:
        print(report(parse(args.read.read_bytes())))
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    if args.keep:
        records = args.keep
        records.touch()
    else:
        descriptor, name = tempfile.mkstemp(prefix="dagster-ecs-acct-")
        os.close(descriptor)
        records = Path(name)
    _acct(str(records))
    started = time.monotonic()
    try:
        returncode = subprocess.call(command)
    finally:
        wall = time.monotonic() - started
        _acct(None)
    print(report(parse(records.read_bytes()), wall))
    if not args.keep:
        records.unlink()
    return returncode


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run every molecule scenario, in the stage map's (site.yml's) order, on one fresh emulator: `make molecule`.

`molecule test --all` works too, but runs the scenarios alphabetically, so the first one
(autoscaling) has its prepare build a dozen stages the later scenarios then converge again. In
site.yml's order each scenario finds what it needs already built by the ones before it, so the role
scenarios run without prepare here (.config/molecule/ordered.yml).

Ports default to free ones (set DAGSTER_ECS_MOLECULE_PORT, _PORT2, _PROXY_PORT to choose);
arguments after the script's name go to `molecule test` (e.g. --destroy never).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The default scenario (create/destroy: the emulator), the preflight, offline_endpoint (which uses
# an emulator of its own and can go anywhere) and preview (no AWS call), then the stages in the stage
# map's order, each finding what it needs already built; teardown deletes the stack, last.
STAGE_MAP = ROOT / "playbooks" / "vars" / "stages.yml"
# The shared settings, then this run's: in this order every scenario's needs are built by the ones before
# it, so ordered.yml leaves prepare out of the role scenarios' sequence (it would build nothing).
BASE_CONFIGS = [ROOT / ".config" / "molecule" / "config.yml", ROOT / ".config" / "molecule" / "ordered.yml"]


def order() -> list[str]:
    stages = [stage["name"] for stage in yaml.safe_load(STAGE_MAP.read_text())["dagster_ecs_stages"]]
    first = ["default", "preflight", "offline_endpoint", "preview"]
    return first + [s for s in stages if s != "preflight"] + ["teardown"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(extra: list[str]) -> tuple[list[str], dict[str, str]]:
    scenarios = order()
    missing = sorted({p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml")} - set(scenarios))
    if missing:
        raise SystemExit(f"molecule/run.py: scenarios that are not stages of {STAGE_MAP}: {', '.join(missing)}")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("ANSIBLE_CONFIG", None)
    for name in ("DAGSTER_ECS_MOLECULE_PORT", "DAGSTER_ECS_MOLECULE_PORT2", "DAGSTER_ECS_MOLECULE_PROXY_PORT"):
        env.setdefault(name, str(free_port()))
    # Named scenarios (-s) run in the order they are named, each found as molecule/<name>/molecule.yml.
    env.pop("MOLECULE_GLOB", None)
    argv = [str(Path(sys.executable).parent / "molecule")]
    for base in BASE_CONFIGS:
        argv += ["--base-config", str(base)]
    argv.append("test")
    for name in scenarios:
        argv += ["-s", name]
    return argv + extra, env


def main() -> int:
    argv, env = command(sys.argv[1:])
    print(f"molecule/run.py: emulator on 127.0.0.1:{env['DAGSTER_ECS_MOLECULE_PORT']}", flush=True)
    return subprocess.call(argv, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())

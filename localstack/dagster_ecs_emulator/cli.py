"""Command line: ``python -m dagster_ecs_emulator {serve,start,stop,status}``.

``start`` is what the offline profile runs when nothing listens on the endpoint: it
starts ``serve`` in the background (its own session, so it outlives ansible-playbook),
records the pid and log under the state directory, and returns once the emulator
answers. ``stop`` stops only a process that ``start`` recorded. Every command prints
one JSON object so the playbook can read the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .server import HEALTH_PATH

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def identify(host: str, port: int) -> str:
    """Name what listens on host:port: ``dagster-ecs-emulator``, ``localstack``, ``other`` or ``none``."""
    if not _listening(host, port):
        return "none"
    for path, kind in ((HEALTH_PATH, "dagster-ecs-emulator"), ("/_localstack/health", "localstack")):
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return kind
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return "other"


def _paths(state_dir: str) -> tuple[Path, Path]:
    state = Path(state_dir)
    return state / "emulator.pid", state / "emulator.log"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"dagster_ecs_emulator" in cmdline.read_bytes()


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def cmd_start(args) -> dict:
    kind = identify(args.host, args.port)
    endpoint = f"http://{args.host}:{args.port}"
    if kind != "none":
        return {"changed": False, "started": False, "endpoint": endpoint, "kind": kind}
    pid_file, log_file = _paths(args.state_dir)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dagster_ecs_emulator", "serve", "--host", args.host, "--port", str(args.port)]
    for shim in args.disable_shim:
        command += ["--disable-shim", shim]
    if args.faults:
        command += ["--faults", args.faults]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file.unlink(missing_ok=True)
            tail = log_file.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit(
                json.dumps(
                    {
                        "failed": True,
                        "msg": f"emulator exited with {proc.returncode}",
                        "log": str(log_file),
                        "log_tail": tail,
                    }
                )
            )
        if identify(args.host, args.port) == "dagster-ecs-emulator":
            return {
                "changed": True,
                "started": True,
                "endpoint": endpoint,
                "kind": "dagster-ecs-emulator",
                "pid": proc.pid,
                "log": str(log_file),
                "pid_file": str(pid_file),
            }
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    raise SystemExit(
        json.dumps({"failed": True, "msg": f"emulator did not answer within {args.timeout}s", "log": str(log_file)})
    )


def cmd_stop(args) -> dict:
    pid_file, _ = _paths(args.state_dir)
    pid = _read_pid(pid_file)
    if pid is None or not _pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return {"changed": False, "stopped": False}
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return {"changed": True, "stopped": True, "pid": pid}


def cmd_status(args) -> dict:
    pid_file, log_file = _paths(args.state_dir)
    pid = _read_pid(pid_file)
    return {
        "changed": False,
        "endpoint": f"http://{args.host}:{args.port}",
        "kind": identify(args.host, args.port),
        "pid": pid if pid is not None and _pid_alive(pid) else None,
        "log": str(log_file),
    }


def cmd_serve(args) -> dict | None:
    from .faults import startup_rules
    from .server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.host, args.port, args.disable_shim, startup_rules(args.faults))
    return None


def cmd_runtime(args) -> dict | None:
    from . import runtime

    state_dir = Path(args.state_dir)
    if args.action == "run":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        runtime.Runtime(json.loads(Path(args.config).read_text()), state_dir).run()
        return None
    if args.action == "start":
        try:
            return runtime.start(Path(args.config), state_dir, args.timeout)
        except RuntimeError as exc:
            raise SystemExit(json.dumps({"failed": True, "msg": str(exc)})) from exc
    if args.action == "stop":
        return runtime.stop(state_dir)
    status = runtime.read_status(state_dir)
    return {"changed": False, "running": bool(status), "status": status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_ecs_emulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (
        ("serve", cmd_serve, "serve in the foreground"),
        ("start", cmd_start, "start in the background unless something already listens"),
        ("stop", cmd_stop, "stop the emulator that 'start' recorded in --state-dir"),
        ("status", cmd_status, "report what listens on the endpoint"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
        p.add_argument("--host", default=DEFAULT_HOST)
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--state-dir", default=".state/localstack")
        p.add_argument("--timeout", type=float, default=30.0)
        p.add_argument(
            "--disable-shim",
            action="append",
            default=[],
            metavar="NAME",
            help="serve without this compatibility shim (tests use it to prove a shim is needed)",
        )
        p.add_argument(
            "--faults",
            metavar="FILE",
            help="fault rules (JSON) to start with; default $DAGSTER_ECS_EMULATOR_FAULTS (see faults.py)",
        )
    rt = sub.add_parser("runtime", help="the local ECS runtime: run the emulated ECS services as host processes")
    rt.set_defaults(func=cmd_runtime)
    rt.add_argument("action", choices=["run", "start", "stop", "status"])
    rt.add_argument("--config", help="runtime configuration (JSON, written by the local_runtime role)")
    rt.add_argument("--state-dir", default=".state/offline/runtime")
    rt.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    result = args.func(args)
    if result is not None:
        print(json.dumps(result))
    return 0

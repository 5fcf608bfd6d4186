"""Load a DAG directory's Dagster definitions and describe them, or say why they do not load.

    python -m dagster_ecs_container.inspect DIR [--module definitions]

Prints one JSON object: ``{"ok": true, "assets": [...], "jobs": [...], "schedules": [...],
"sensors": [...], "asset_checks": [...]}`` or ``{"ok": false, "error": ..., "file": ...}`` and
exits 1. Run in a fresh interpreter (a subprocess) so that nothing of a previous version
stays imported: ``run()`` does that. Used by the publisher (validate before upload), the
container at start-up and in run tasks (validate the synced version) and the verify stage (the
assets to expect).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
import warnings
from pathlib import Path


def _user_frame(exc: BaseException, directory: Path) -> str | None:
    """The last traceback frame inside the DAG directory: the file to blame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append(traceback.FrameSummary(exc.filename, exc.lineno or 0, "<module>"))
    inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(directory)]
    if not inside:
        return None
    frame = inside[-1]
    return f"{Path(frame.filename).resolve().relative_to(directory)}:{frame.lineno}"


def describe(directory: Path, module: str = "definitions") -> dict:
    directory = directory.resolve()
    if not (directory / f"{module}.py").is_file():
        return {"ok": False, "error": f"no {module}.py in {directory}", "file": None}
    sys.path.insert(0, str(directory))
    try:
        import dagster as dg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = __import__(module)
            defs = getattr(loaded, "defs", None)
            if not isinstance(defs, dg.Definitions):
                return {
                    "ok": False,
                    "error": f"{module}.py defines no `defs = Definitions(...)`",
                    "file": f"{module}.py",
                }
            dg.Definitions.validate_loadable(defs)
            repo = defs.get_repository_def()
            graph = defs.resolve_asset_graph()
            return {
                "ok": True,
                "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
                "asset_checks": sorted(
                    f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
                ),
                "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
                "schedules": sorted(s.name for s in repo.schedule_defs),
                "sensors": sorted(s.name for s in repo.sensor_defs),
            }
    except BaseException as exc:  # noqa: BLE001 - report any failure of user code, then exit 1
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return {"ok": False, "error": message, "file": _user_frame(exc, directory)}


def run(
    python: str, directory, module: str = "definitions", timeout: float = 180, env: dict[str, str] | None = None
) -> tuple[bool, dict]:
    """``describe`` in a fresh interpreter (``python`` has the pinned Dagster): (ok, result or error dict).

    ``env``: the interpreter's environment (default: this process's), e.g. with a dependency layer on
    ``PYTHONPATH`` (``layers.pythonpath``).
    """
    command = [python, "-m", "dagster_ecs_container.inspect", str(directory), "--module", module]
    try:
        done = subprocess.run(  # noqa: S603 - our own command line
            command, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return False, {"error": f"loading the definitions took more than {timeout:g}s", "file": None}
    except OSError as exc:
        return False, {"error": f"cannot run {python}: {exc}", "file": None}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return False, {"error": "the definitions loader printed no result: " + " | ".join(tail), "file": None}
    return bool(result.get("ok")), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagster_ecs_container.inspect", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--module", default="definitions")
    args = parser.parse_args(argv)
    result = describe(args.directory, args.module)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

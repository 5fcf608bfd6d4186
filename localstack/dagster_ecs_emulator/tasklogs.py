"""A local task's output, where its ``awslogs`` settings send it: the emulated CloudWatch Logs.

On Fargate the ``awslogs`` driver writes each container's output to the stream
``<awslogs-stream-prefix>/<container name>/<task id>`` of ``awslogs-group``. The local runtime
pipes a task's stdout/stderr through :class:`LogShipper`, which keeps the runtime's own log file
(what ``status.json`` and the error lines read) and ships the same lines to that stream in
batches, so ``aws logs tail`` and the run launcher's log excerpts work offline.

As Fargate's driver, :func:`open_stream` creates the stream, signed as the task's execution role, before the
container starts: a task whose stream cannot be created (no such group, or the role may not create it) does not
start, and stops with ``ResourceInitializationError: failed to validate logger args``.
"""

from __future__ import annotations

import logging
import threading
import time

LOG = logging.getLogger("dagster_ecs_emulator.tasklogs")

BATCH_SECONDS = 1.0
BATCH_LINES = 500


def stream_name(container: dict, task_arn: str) -> tuple[str, str] | None:
    """The (group, stream) the container's awslogs configuration names for this task, or None."""
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
        return None
    prefix = options.get("awslogs-stream-prefix", "")
    task_id = task_arn.rsplit("/", 1)[-1]
    return options["awslogs-group"], f"{prefix}/{container['name']}/{task_id}" if prefix else task_id


class LoggerError(Exception):
    """The task's awslogs stream cannot be created, so the task does not start (its ``stoppedReason``)."""


def open_stream(logs_client, destination: tuple[str, str] | None) -> None:
    """Create the task's stream (an existing one is fine); :class:`LoggerError` names why it cannot be."""
    if destination is None:
        return
    group, stream = destination
    try:
        logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs_client.exceptions.ResourceAlreadyExistsException:
        return
    except Exception as exc:  # noqa: BLE001 - whatever stops the driver stops the task, as on Fargate
        raise LoggerError(
            f"ResourceInitializationError: failed to validate logger args: failed to create Cloudwatch log stream "
            f"{stream} in {group}: {exc}"
        ) from exc


class LogShipper(threading.Thread):
    """Copy a pipe to a file and, in batches, to a CloudWatch Logs stream (None: the file only)."""

    def __init__(self, pipe, log_file, logs_client, destination: tuple[str, str] | None):
        super().__init__(daemon=True, name=f"logs-{destination[1] if destination else 'file'}")
        self.pipe, self.log_file, self.logs, self.destination = pipe, log_file, logs_client, destination
        self.pending: list[dict] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.shipped = 0  # to the stream open_stream created before the task started

    def run(self) -> None:
        ticker = threading.Thread(target=self._tick, daemon=True)
        ticker.start()
        with open(self.log_file, "ab", buffering=0) as out:
            for raw in iter(self.pipe.readline, b""):
                out.write(raw)
                line = raw.decode(errors="replace").rstrip("\n")
                if self.destination and line:
                    with self.lock:
                        self.pending.append({"timestamp": int(time.time() * 1000), "message": line})
                        full = len(self.pending) >= BATCH_LINES
                    if full:
                        self.flush()
        self.done.set()
        ticker.join(5)
        self.flush()

    def _tick(self) -> None:
        """Ship what is pending every BATCH_SECONDS, also while the task is silent."""
        while not self.done.wait(BATCH_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if batch and self.destination:
            self._ship(batch)

    def _ship(self, batch: list[dict]) -> None:
        group, stream = self.destination
        try:
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            self.shipped += len(batch)
        except Exception as exc:  # noqa: BLE001 - a missing group or a restarting emulator must not stop the task
            LOG.warning("cannot ship %d line(s) to %s %s: %s", len(batch), group, stream, exc)

"""A sensor: each new file in an inbox directory triggers the orders job once.

The inbox is ``$DAGSTER_INBOX_DIR`` (default: ``inbox`` under the shared storage, the EFS
mount in ECS). Turn the sensor on in the UI; it is off by default.
"""

import os
from pathlib import Path

import dagster as dg

from pipelines.orders import orders_job


def inbox_dir() -> Path:
    default = Path(os.environ.get("DAGSTER_STORAGE_DIR", "/opt/dagster/storage")) / "inbox"
    return Path(os.environ.get("DAGSTER_INBOX_DIR", default))


@dg.sensor(
    job=orders_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs orders_job once for every new file in the inbox.",
)
def orders_inbox_sensor(context: dg.SensorEvaluationContext):
    inbox = inbox_dir()
    if not inbox.is_dir():
        return dg.SkipReason(f"no inbox directory at {inbox}")
    files = sorted(p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        return dg.SkipReason("inbox is empty")
    return [dg.RunRequest(run_key=name, tags={"inbox_file": name}) for name in files]

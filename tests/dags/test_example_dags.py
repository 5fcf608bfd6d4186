"""The example DAGs load and materialize in-process with the pinned Dagster."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import dagster as dg
import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def defs():
    sys.path.insert(0, str(DAGS))
    try:
        for name in [m for m in sys.modules if m == "definitions" or m.startswith("pipelines")]:
            del sys.modules[name]
        yield importlib.import_module("definitions").defs
    finally:
        sys.path.remove(str(DAGS))


def test_definitions_load(defs):
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"raw_orders", "cleaned_orders", "daily_revenue"}
    assert defs.resolve_job_def("orders_job")
    assert defs.resolve_schedule_def("orders_daily").cron_schedule == "0 6 * * *"
    assert defs.resolve_sensor_def("orders_inbox_sensor")


def test_materialize_all_assets(defs, tmp_path):
    result = dg.materialize(
        [defs.resolve_assets_def(k) for k in ("raw_orders", "cleaned_orders", "daily_revenue")],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path))},
    )
    assert result.success
    revenue = result.output_for_node("daily_revenue")
    assert len(revenue) == 14 and all(v > 0 for v in revenue.values())
    cleaned = result.output_for_node("cleaned_orders")
    assert all(o["amount"] > 0 for o in cleaned)


def test_job_runs_with_its_check(defs):
    result = defs.resolve_job_def("orders_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]


def test_sensor_requests_one_run_per_new_file(defs, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_INBOX_DIR", str(tmp_path))
    sensor = defs.resolve_sensor_def("orders_inbox_sensor")
    assert isinstance(sensor(dg.build_sensor_context()), dg.SkipReason)
    (tmp_path / "2026-01-02.csv").write_text("x")
    requests = sensor(dg.build_sensor_context())
    assert [r.run_key for r in requests] == ["2026-01-02.csv"]

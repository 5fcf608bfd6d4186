"""DAG publish (the dags stage) and the container's sync, against a real emulator over HTTP.

The publisher runs as a user runs it (``ansible-playbook playbooks/dags.yml``, the stage
behind ``site.yml --tags dags``); the sync is the container's own ``DagSync`` with its real
validation subprocess. Nothing is mocked: a "stopped" emulator is a killed process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from dagster_ecs_container import manifest as mf
from dagster_ecs_container.entrypoint import validate_definitions
from dagster_ecs_container.sync import DagSync
from support.emulator import OFFLINE_CREDENTIALS, wait_for_health
from support.net import free_port
from support.paths import ROOT
from support.playbook import run_playbook

pytestmark = pytest.mark.integration
BUCKET = "dags-under-test"
NEW_ASSET = """
import dagster as dg


@dg.asset(group_name="extra", description="Added by a test.")
def {name}() -> int:
    return 1
"""


def s3_client(endpoint):
    session = boto3.session.Session(
        aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="ap-southeast-2",
    )
    return session.client("s3", endpoint_url=endpoint)


class Emulator:
    """An emulator process on a fixed port, so that a restart answers where the clients point."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process = None

    def start(self):
        log = open(self.log_dir / f"emulator-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagster_ecs_emulator", "serve", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for_health(self.endpoint)
        s3_client(self.endpoint).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"}
        )

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator(tmp_path)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def dags(tmp_path):
    copy = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def publish(emulator, src, *args, validate=False, **extra):
    """Run the dags stage. Validation (a Dagster import, seconds) only where a test is about it."""
    extra_vars = {
        "dagster_ecs_aws_endpoint_url": emulator.endpoint,
        "storage_bucket": BUCKET,
        "dagster_ecs_dags_dir": str(src),
        "dags_validate": validate,
        "dags_notify": False,  # no webserver here (test_workload covers the notification)
        **extra,
    }
    return run_playbook("playbooks/dags.yml", *args, extra_vars=extra_vars)


def live_manifest(emulator):
    body = s3_client(emulator.endpoint).get_object(Bucket=BUCKET, Key="dags/manifest.json")["Body"].read()
    return mf.Manifest.from_json(body)


def bucket_keys(emulator):
    pages = s3_client(emulator.endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_publish_uploads_once_then_nothing(emulator, dags):
    first = publish(emulator, dags, validate=True)
    assert first.returncode == 0, first.output[-4000:]
    assert first.recap["changed"] == 1
    manifest = live_manifest(emulator)
    assert set(manifest.files) == set(mf.scan(dags))
    assert set(manifest.assets) == {"raw_orders", "cleaned_orders", "daily_revenue"}
    assert f"dags/manifests/{manifest.version}.json" in bucket_keys(emulator)

    again = publish(emulator, dags)
    assert again.returncode == 0, again.output[-4000:]
    assert again.recap["changed"] == 0
    assert "0 uploaded (nothing changed)" in again.output
    assert live_manifest(emulator).version == manifest.version


def test_a_new_module_is_published_without_editing_a_list(emulator, dags):
    assert publish(emulator, dags).returncode == 0
    (dags / "pipelines" / "extra.py").write_text(NEW_ASSET.format(name="extra_asset"))
    run = publish(emulator, dags, validate=True)
    assert run.returncode == 0, run.output[-4000:]
    assert "1 added, 0 changed, 0 removed, 1 uploaded" in run.output
    assert "extra_asset" in live_manifest(emulator).assets


def test_check_and_diff_mode_show_changes_and_write_nothing(emulator, dags):
    assert publish(emulator, dags).returncode == 0
    before, keys = live_manifest(emulator).version, bucket_keys(emulator)
    (dags / "pipelines" / "orders.py").write_text((dags / "pipelines" / "orders.py").read_text() + "\n# edited\n")
    (dags / "pipelines" / "inbox.py").unlink()
    run = publish(emulator, dags, "--check", "--diff")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] == 1
    assert "-pipelines/orders.py" in run.output and "+pipelines/orders.py" in run.output
    assert "-pipelines/inbox.py" in run.output
    assert "0 added, 1 changed, 1 removed, 1 uploaded" in run.output
    assert live_manifest(emulator).version == before
    assert bucket_keys(emulator) == keys


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("syntax", "pipelines/broken.py:3"),
        ("import", "pipelines/broken.py:1"),
        ("definitions", "defined multiple times"),
        ("empty", "holds no files"),
    ],
)
def test_bad_dags_are_rejected_before_anything_is_uploaded(emulator, dags, breakage, expected):
    assert publish(emulator, dags).returncode == 0
    before, keys = live_manifest(emulator).version, bucket_keys(emulator)
    if breakage == "syntax":
        (dags / "pipelines" / "broken.py").write_text("import dagster as dg\n\ndef oops(:\n    pass\n")
    elif breakage == "import":
        (dags / "pipelines" / "broken.py").write_text("import module_that_does_not_exist\n")
    elif breakage == "definitions":  # a second asset with an existing key
        (dags / "pipelines" / "broken.py").write_text(NEW_ASSET.format(name="raw_orders"))
    else:
        shutil.rmtree(dags)
        dags.mkdir()
    run = publish(emulator, dags, validate=True)
    assert run.returncode != 0
    assert run.recap["failed"] == 1
    assert "nothing was published" in run.output or "nothing was uploaded" in run.output
    assert expected in run.output, run.output[-3000:]
    assert live_manifest(emulator).version == before
    assert bucket_keys(emulator) == keys


def test_rollback_restores_the_previous_version(emulator, dags):
    assert publish(emulator, dags).returncode == 0
    first = live_manifest(emulator).version
    (dags / "pipelines" / "extra.py").write_text(NEW_ASSET.format(name="extra_asset"))
    assert publish(emulator, dags).returncode == 0
    second = live_manifest(emulator)
    assert second.previous == first

    back = publish(emulator, dags, dags_rollback_to="previous")
    assert back.returncode == 0, back.output[-4000:]
    restored = live_manifest(emulator)
    assert restored.version == first and "pipelines/extra.py" not in restored.files
    # Rolling "previous" again goes forward again, like `cd -`; a named version works too.
    assert publish(emulator, dags, dags_rollback_to=second.version).returncode == 0
    assert live_manifest(emulator).version == second.version
    unknown = publish(emulator, dags, dags_rollback_to="0123456789abcdef")
    assert unknown.returncode != 0 and "not in the history" in unknown.output


def test_history_is_pruned_and_unreferenced_objects_deleted(emulator, dags):
    extra = dags / "pipelines" / "extra.py"
    for n in range(4):
        extra.write_text(NEW_ASSET.format(name=f"asset_{n}"))
        assert publish(emulator, dags, dags_keep_versions=2).returncode == 0
    keys = bucket_keys(emulator)
    assert len([k for k in keys if k.startswith("dags/manifests/")]) == 2
    live = live_manifest(emulator)
    objects = {k.rsplit("/", 1)[1] for k in keys if k.startswith("dags/objects/")}
    # Only the objects of the two kept versions remain: the four files, plus the older extra.py.
    assert {e.sha256 for e in live.files.values()} <= objects
    assert len(objects) == len(live.files) + 1


# --- the container's sync ------------------------------------------------------------------


def make_sync(emulator, tmp_path, validate=True):
    return DagSync(
        s3_client(emulator.endpoint),
        BUCKET,
        "dags/",
        tmp_path / "live" / "dags",
        status_file=tmp_path / "live" / "status.json",
        validate=validate_definitions if validate else None,
    )


def live_files(sync):
    return {p: e.sha256 for p, e in mf.scan(sync.live.resolve()).items()}


def test_sync_goes_live_then_polls_with_one_request(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    sync = make_sync(emulator, tmp_path)
    assert sync.poll() is True
    assert live_files(sync) == {p: e.sha256 for p, e in mf.scan(dags).items()}
    assert sync.status.downloaded == len(mf.scan(dags))
    assert sync.poll() is False  # conditional GET: 304
    (dags / "pipelines" / "extra.py").write_text(NEW_ASSET.format(name="extra_asset"))
    assert publish(emulator, dags).returncode == 0
    assert sync.poll() is True
    assert sync.status.downloaded == 1
    assert "pipelines/extra.py" in live_files(sync)


def test_sync_refuses_a_corrupted_object_and_keeps_the_live_dags(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    sync = make_sync(emulator, tmp_path, validate=False)
    assert sync.poll() is True
    live_before = live_files(sync)
    (dags / "pipelines" / "orders.py").write_text((dags / "pipelines" / "orders.py").read_text() + "\n# v2\n")
    assert publish(emulator, dags).returncode == 0
    changed = live_manifest(emulator).files["pipelines/orders.py"].sha256
    s3_client(emulator.endpoint).put_object(Bucket=BUCKET, Key=f"dags/objects/{changed}", Body=b"tampered")
    assert sync.poll() is False
    assert "corrupt" in sync.status.last_error
    assert live_files(sync) == live_before
    assert json.loads((tmp_path / "live" / "status.json").read_text())["last_error"] == sync.status.last_error


def test_sync_refuses_definitions_that_do_not_load(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    sync = make_sync(emulator, tmp_path)
    assert sync.poll() is True
    live_before = live_files(sync)
    # Published without the publisher's validation (as a hand-made upload would be).
    (dags / "pipelines" / "broken.py").write_text("import module_that_does_not_exist\n")
    assert publish(emulator, dags).returncode == 0
    assert sync.poll() is False
    assert "do not load" in sync.status.last_error and "module_that_does_not_exist" in sync.status.last_error
    assert live_files(sync) == live_before
    assert not list(sync.versions.glob("*.partial"))


def test_sync_survives_the_emulator_stopping_mid_sync_and_recovers(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    sync = make_sync(emulator, tmp_path, validate=False)
    assert sync.poll() is True
    live_before = live_files(sync)
    for n in range(30):
        (dags / "pipelines" / f"extra_{n}.py").write_text(NEW_ASSET.format(name=f"extra_{n}"))
    assert publish(emulator, dags).returncode == 0

    real_get = sync.s3.get_object
    calls = {"n": 0}

    def stop_after_a_few(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the manifest was read; the emulator dies before the bundle (or any file)
            emulator.stop()
        return real_get(**kwargs)

    sync.s3.get_object = stop_after_a_few
    assert sync.poll() is False
    assert sync.status.last_error and live_files(sync) == live_before
    assert sync.poll() is False  # still down: still the same live DAGs
    assert live_files(sync) == live_before

    emulator.start()  # back, empty: the next publish (a re-run of the stage) restores the bucket
    assert publish(emulator, dags).returncode == 0
    assert sync.poll() is True
    assert sync.status.last_error is None
    assert live_files(sync) == {p: e.sha256 for p, e in mf.scan(dags).items()}


# --- dependency layers (requirements.txt) ----------------------------------------------------------
# uv resolves and installs from the test wheels only (inflection: pure Python; ujson: compiled, x86_64 and
# aarch64; docopt: an sdist only), never from a package index.
LOCAL_WHEELS = {"dags_find_links": [str(ROOT / "tests" / "fixtures" / "wheels")], "dags_no_index": True}
USES_INFLECTION = """
import dagster as dg
import inflection


@dg.asset(group_name="deps")
def titled() -> str:
    return inflection.titleize("raw_orders")
"""


def with_requirements(dags, *lines):
    (dags / "requirements.txt").write_text("".join(f"{line}\n" for line in lines))
    (dags / "pipelines" / "titled.py").write_text(USES_INFLECTION)


def test_a_dependency_is_built_once_and_reused(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    with_requirements(dags, "inflection==0.5.1")
    cache = {"dags_layer_cache": str(tmp_path / "cache"), **LOCAL_WHEELS}
    run = publish(emulator, dags, validate=True, **cache)
    assert run.returncode == 0, run.output[-4000:]
    manifest = live_manifest(emulator)
    assert "titled" in manifest.assets
    assert manifest.dependencies.requirements == ("inflection==0.5.1",)
    assert sorted(manifest.dependencies.layers) == ["cp311-linux-aarch64", "cp311-linux-x86_64"]
    assert "Dependencies: inflection==0.5.1 (+inflection==0.5.1); layers: cp311-linux-aarch64" in run.output
    keys = bucket_keys(emulator)
    assert all(f"dags/objects/{layer.sha256}" in keys for layer in manifest.dependencies.layers.values())

    again = publish(emulator, dags, validate=True, **cache)
    assert again.returncode == 0 and again.recap["changed"] == 0, again.output[-3000:]
    (dags / "pipelines" / "orders.py").write_text((dags / "pipelines" / "orders.py").read_text() + "\n# v2\n")
    code_only = publish(emulator, dags, validate=True, **cache)
    assert code_only.returncode == 0, code_only.output[-3000:]
    assert "cp311-linux-aarch64 " in code_only.output and "built in" not in code_only.output
    assert ", 1 uploaded" in code_only.output
    assert live_manifest(emulator).dependencies == manifest.dependencies


def test_pruning_deletes_the_layers_no_kept_version_references(emulator, dags):
    with_requirements(dags, "inflection==0.5.1")
    assert publish(emulator, dags, dags_keep_versions=2, **LOCAL_WHEELS).returncode == 0
    shas = {layer.sha256 for layer in live_manifest(emulator).dependencies.layers.values()}
    (dags / "requirements.txt").unlink()
    (dags / "pipelines" / "titled.py").unlink()
    extra = dags / "pipelines" / "extra.py"
    extra.write_text(NEW_ASSET.format(name="asset_a"))
    assert publish(emulator, dags, dags_keep_versions=2).returncode == 0
    assert {f"dags/objects/{sha}" for sha in shas} <= set(bucket_keys(emulator))  # the previous version keeps them
    extra.write_text(NEW_ASSET.format(name="asset_b"))
    assert publish(emulator, dags, dags_keep_versions=2).returncode == 0
    assert not {f"dags/objects/{sha}" for sha in shas} & set(bucket_keys(emulator))


def test_check_and_diff_mode_show_dependency_changes(emulator, dags):
    with_requirements(dags, "inflection==0.5.1")
    assert publish(emulator, dags, **LOCAL_WHEELS).returncode == 0
    keys = bucket_keys(emulator)
    (dags / "requirements.txt").write_text("inflection==0.5.1\nujson==5.10.0\n")
    run = publish(emulator, dags, "--check", "--diff", **LOCAL_WHEELS)
    assert run.returncode == 0, run.output[-4000:]
    assert "+requires ujson==5.10.0" in run.output and "-requires inflection" not in run.output
    assert "(+ujson==5.10.0)" in run.output
    assert bucket_keys(emulator) == keys


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("nosuchpackage-dagster-ecs", "nosuchpackage-dagster-ecs was not found"),
        ("dagster==1.12.0", "conflicts with the image's pin dagster==1.13.27"),
        ("docopt", "cannot be resolved for cp311-linux-aarch64: "),
    ],
)
def test_bad_dependencies_fail_before_anything_is_uploaded(emulator, dags, requirement, expected):
    assert publish(emulator, dags).returncode == 0
    before, keys = live_manifest(emulator).version, bucket_keys(emulator)
    with_requirements(dags, requirement)
    run = publish(emulator, dags, validate=True, **LOCAL_WHEELS)
    assert run.returncode != 0 and run.recap["failed"] == 1
    assert "nothing was published" in run.output and expected in run.output, run.output[-3000:]
    if requirement == "docopt":
        assert "docopt" in run.output and "no usable wheels" in run.output
    assert live_manifest(emulator).version == before and bucket_keys(emulator) == keys


def test_sync_unpacks_the_layer_and_the_definitions_import_it(emulator, dags, tmp_path):
    assert publish(emulator, dags).returncode == 0
    sync = make_sync(emulator, tmp_path)  # the real validation: a fresh interpreter, the layer on its path
    assert sync.poll() is True
    without = sync.live.resolve()
    with_requirements(dags, "inflection==0.5.1", "ujson==5.10.0")
    (dags / "pipelines" / "titled.py").write_text(
        USES_INFLECTION + "\nimport ujson  # compiled: this machine's wheel\n"
    )
    assert publish(emulator, dags, **LOCAL_WHEELS).returncode == 0
    assert sync.poll() is True, sync.status.last_error
    version = sync.live.resolve()
    layer = (version / ".layer").resolve()
    assert (layer / "inflection").is_dir() and any(layer.glob("ujson*.so"))
    assert layer.parent == tmp_path / "live" / ".dags.layers"
    # rolled back to the version without dependencies: it has no layer on its path
    assert publish(emulator, dags, dags_rollback_to="previous").returncode == 0
    assert sync.poll() is True, sync.status.last_error
    assert sync.live.resolve() == without and not (without / ".layer").exists()

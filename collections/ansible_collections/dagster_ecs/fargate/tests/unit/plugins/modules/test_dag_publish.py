"""dag_publish: content-addressed DAG versions in S3 (moto's S3). The webserver's notification, which was
part of this module, is dag_notify's: its tests, with their names, are in test_dag_notify.py.

The definitions' validation (a Dagster import in a subprocess, seconds) is replaced by a recording fake,
except in one test that runs the real loader on a directory it rejects before importing Dagster.
"""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import dag_publish
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import ACCOUNT, Reply, client_error, warnings_of
from botocore.exceptions import EndpointConnectionError
from dagster_ecs_container import manifest as mf

BUCKET = "dagster-ecs-dags"


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    aws.forget()
    return client


@pytest.fixture
def validated(monkeypatch):
    """The definitions' loader, faked: it records its calls and answers ``validated.answer``."""

    class Loader:
        calls = []
        envs = []
        answer = (True, {"assets": ["raw_orders", "daily_revenue"]})

        def __call__(self, python, src, module, timeout, env=None):
            self.calls.append((python, src, module, timeout))
            self.envs.append(env)
            return self.answer

    loader = Loader()
    monkeypatch.setattr(dag_publish.definitions, "run", loader)
    return loader


def write(directory, files):
    for path, content in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return directory


@pytest.fixture
def src(tmp_path):
    return write(tmp_path / "dags", {"definitions.py": "defs = 1\n", "lib/util.py": "X = 1\n"})


def publish(run_module, src, **extra):
    return run_module(dag_publish, {"bucket": BUCKET, "src": str(src), "created_by": "tester", **extra})


def keys(s3, prefix="dags/"):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def live(s3):
    return mf.Manifest.from_json(s3.get_object(Bucket=BUCKET, Key="dags/manifest.json")["Body"].read())


def backdate(s3_key, minutes):
    """Give an object an older LastModified (S3 keeps seconds: publishes in one second would tie)."""
    from moto.s3.models import s3_backends

    key = s3_backends[ACCOUNT]["aws"].buckets[BUCKET].keys[s3_key]
    key.last_modified = key.last_modified - datetime.timedelta(minutes=minutes)


def publish_versions(run_module, s3, src, count, **extra):
    """Publish ``count`` versions (one file changed each time); the older a history manifest, the older its
    LastModified, and all are older than the next publish."""
    versions = []
    for i in range(count):
        write(src, {"lib/util.py": f"X = {i}\n"})
        versions.append(publish(run_module, src, **extra)["version"])
        for key in keys(s3, "dags/manifests/"):
            backdate(key, 1)
    return versions


# --- publish ----------------------------------------------------------------------------------------


def test_first_publish_uploads_everything(run_module, s3, src, validated, aws):
    result = publish(run_module, src)
    assert result["changed"]
    files = mf.scan(src)
    assert result["version"] == mf.version_of(files)
    assert result["previous_version"] is None
    assert result["added"] == ["definitions.py", "lib/util.py"] and result["changed_files"] == result["removed"] == []
    assert result["uploaded"] == 2 and result["files"] == 2 and result["deleted_objects"] == 0
    assert result["assets"] == ["raw_orders", "daily_revenue"]
    assert result["bundle"] == "none" and result["manifest_key"] == "dags/manifest.json"
    assert (
        result["diff"]["before_header"] == "(nothing published)" and result["diff"]["after_header"] == result["version"]
    )
    assert "definitions.py  " in result["diff"]["after"] and result["diff"]["before"] == ""
    manifest = live(s3)
    assert manifest.version == result["version"] and manifest.created_by == "tester"
    assert manifest.assets == result["assets"]
    assert keys(s3) == sorted(
        ["dags/manifest.json", f"dags/manifests/{result['version']}.json"]
        + [f"dags/objects/{entry.sha256}" for entry in files.values()]
    )
    head = s3.head_object(Bucket=BUCKET, Key="dags/manifest.json")
    assert head["ContentType"] == "application/json" and head["CacheControl"] == "no-cache"
    (python, called_src, module, timeout) = validated.calls[0]
    assert str(called_src) == str(src) and module == "definitions" and timeout == 180


def test_unchanged_is_one_read_and_no_validation(run_module, s3, src, validated, aws):
    first = publish(run_module, src)
    aws.forget()
    validated.calls.clear()
    result = publish(run_module, src)
    assert not result["changed"]
    assert result["version"] == first["version"] and result["uploaded"] == 0
    assert result["assets"] == first["assets"]
    assert [op for _service, op, _params in aws.calls] == ["GetObject"]
    assert validated.calls == []


def test_a_change_uploads_only_new_content(run_module, s3, src, validated, aws):
    first = publish(run_module, src)
    write(src, {"lib/util.py": "X = 2\n", "lib/new.py": "Y = 1\n", "lib/same.py": "defs = 1\n"})
    (src / "definitions.py").rename(src / "renamed.py")
    aws.forget()
    result = publish(run_module, src)
    assert result["changed"] and result["previous_version"] == first["version"]
    assert result["added"] == ["lib/new.py", "lib/same.py", "renamed.py"]
    assert result["changed_files"] == ["lib/util.py"] and result["removed"] == ["definitions.py"]
    assert result["uploaded"] == 2  # util.py and new.py; same.py and renamed.py have known content
    assert aws.count("PutObject") == 4  # two objects, the history manifest, the live one (last)
    assert aws.params("PutObject")[-1]["Key"] == "dags/manifest.json"
    assert live(s3).previous == first["version"]


def test_ignored_files_are_not_published(run_module, s3, src, validated):
    write(src, {"__pycache__/x.pyc": "", "tests/test_x.py": "", ".hidden": "", "a.py~": ""})
    assert publish(run_module, src)["files"] == 2


def test_check_mode_writes_nothing(run_module, s3, src, validated, aws):
    result = publish(run_module, src, _ansible_check_mode=True)
    assert result["changed"] and result["uploaded"] == 2
    assert keys(s3) == []
    assert aws.count("PutObject") == 0


def test_validation_failure_publishes_nothing(run_module, s3, src, validated, aws):
    validated.answer = (False, {"error": "SyntaxError: invalid syntax", "file": "definitions.py:3"})
    result = publish(run_module, src, python="/opt/python", definitions_module="defs", validate_timeout=5)
    assert result["failed"]
    assert result["msg"] == (
        f"The DAGs in {src} do not load, nothing was published. definitions.py:3: SyntaxError: invalid syntax"
    )
    assert result["file"] == "definitions.py:3" and result["error"] == "SyntaxError: invalid syntax"
    assert validated.calls[0][0] == "/opt/python" and validated.calls[0][2:] == ("defs", 5)
    assert keys(s3) == [] and aws.count("PutObject") == 0


def test_validation_failure_without_a_file(run_module, s3, src, validated):
    validated.answer = (False, {"error": "loading took more than 5s", "file": None})
    result = publish(run_module, src)
    assert result["msg"].endswith("nothing was published. loading took more than 5s")


def test_real_loader_rejects_a_directory_without_definitions(run_module, s3, tmp_path):
    """dagster_ecs_container.inspect in a subprocess; it answers before importing Dagster."""
    src = write(tmp_path / "dags", {"other.py": "X = 1\n"})
    result = publish(run_module, src)
    assert result["failed"] and "do not load, nothing was published" in result["msg"]
    assert "no definitions.py in" in result["error"]


def test_without_validation(run_module, s3, src, validated):
    result = publish(run_module, src, validate=False)
    assert result["changed"] and result["assets"] == [] and validated.calls == []


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: tmp])
def test_missing_or_empty_directory(run_module, s3, tmp_path, validated, make):
    src = make(tmp_path)
    result = publish(run_module, src)
    assert result["failed"]
    assert result["msg"] in (
        f"DAG directory {src} does not exist",
        f"DAG directory {src} holds no files to publish; nothing was uploaded",
    )


def test_arguments(run_module, aws, src, validated):
    assert "src" in run_module(dag_publish, {"bucket": BUCKET})["msg"]
    assert "version" in run_module(dag_publish, {"bucket": BUCKET, "state": "rollback"})["msg"]
    # The notification is dag_notify's (test_dag_notify.py::test_arguments: its url needs its secret).
    result = run_module(dag_publish, {"bucket": BUCKET, "src": str(src), "notify_url": "http://x"})
    assert result["failed"] and "Unsupported parameters" in result["msg"] and "notify_url" in result["msg"]
    result = run_module(dag_publish, {"bucket": BUCKET, "src": str(src), "keep_versions": 0})
    assert result["msg"] == "keep_versions must be at least 1 (the live version is always kept)"
    assert aws.calls == []


def test_without_the_container_package(run_module, aws, src, monkeypatch):
    monkeypatch.setattr(dag_publish, "HAS_MANIFEST", False)
    result = run_module(dag_publish, {"bucket": BUCKET, "src": str(src)})
    assert result["failed"] and "dagster-ecs-container" in result["msg"]


def test_default_created_by_and_prefix(run_module, s3, src, validated):
    result = run_module(dag_publish, {"bucket": BUCKET, "src": str(src), "prefix": "/team/dags/"})
    assert result["manifest_key"] == "team/dags/manifest.json"
    manifest = mf.Manifest.from_json(s3.get_object(Bucket=BUCKET, Key="team/dags/manifest.json")["Body"].read())
    assert "@" in manifest.created_by


def test_corrupt_live_manifest_is_replaced_with_a_warning(run_module, s3, src, validated):
    s3.put_object(Bucket=BUCKET, Key="dags/manifest.json", Body=b"{not json")
    result = publish(run_module, src)
    assert result["changed"] and result["previous_version"] is None
    assert any("dags/manifest.json is not valid" in w for w in warnings_of(result))
    assert live(s3).version == result["version"]


# --- bundles ----------------------------------------------------------------------------------------


@pytest.fixture
def big_src(tmp_path):
    return write(tmp_path / "dags", {f"m{i:02}.py": f"X = {i}\n" for i in range(20)})


def bundle_of(s3):
    return live(s3).bundle


def test_bundle_is_built_for_eight_files_or_more(run_module, s3, big_src, validated):
    result = publish(run_module, big_src)
    assert result["bundle"] == "new" and result["uploaded"] == 21
    bundle = bundle_of(s3)
    assert bundle.version == result["version"]
    data = s3.get_object(Bucket=BUCKET, Key=f"dags/objects/{bundle.sha256}")["Body"].read()
    assert mf.sha256_bytes(data) == bundle.sha256 and len(data) == bundle.size
    assert s3.head_object(Bucket=BUCKET, Key=f"dags/objects/{bundle.sha256}")["ContentType"] == "application/gzip"
    again = publish(run_module, big_src)  # unchanged: the live bundle stays, and is reported
    assert not again["changed"] and again["bundle"] == "reused" and bundle_of(s3) == bundle


def test_bundle_is_reused_while_few_files_differ(run_module, s3, big_src, validated):
    first = publish(run_module, big_src)
    bundle = bundle_of(s3)
    write(big_src, {"m00.py": "X = 100\n"})
    second = publish(run_module, big_src)
    assert second["bundle"] == "reused" and second["uploaded"] == 1
    assert bundle_of(s3) == bundle
    write(big_src, {"m01.py": "X = 101\n"})
    third = publish(run_module, big_src)  # the bundle is of `first`, read from the history
    assert third["bundle"] == "reused" and bundle_of(s3).version == first["version"]


def test_bundle_is_rebuilt_when_stale(run_module, s3, big_src, validated):
    publish(run_module, big_src)
    old = bundle_of(s3)
    write(big_src, {f"m{i:02}.py": f"Y = {i}\n" for i in range(17)})
    result = publish(run_module, big_src)
    assert result["bundle"] == "new" and result["uploaded"] == 18
    assert bundle_of(s3).sha256 != old.sha256


def test_bundle_whose_base_is_gone_is_rebuilt(run_module, s3, big_src, validated):
    first = publish(run_module, big_src)
    write(big_src, {"m00.py": "X = 100\n"})
    publish(run_module, big_src)
    s3.delete_object(Bucket=BUCKET, Key=f"dags/manifests/{first['version']}.json")
    write(big_src, {"m01.py": "X = 101\n"})
    assert publish(run_module, big_src)["bundle"] == "new"


# --- history and pruning ------------------------------------------------------------------------------


def test_old_versions_and_their_objects_are_pruned(run_module, s3, src, validated):
    versions = publish_versions(run_module, s3, src, 4, keep_versions=2)
    history = keys(s3, "dags/manifests/")
    assert history == sorted(f"dags/manifests/{v}.json" for v in versions[-2:])
    referenced = {e.sha256 for e in live(s3).files.values()}
    previous = mf.Manifest.from_json(
        s3.get_object(Bucket=BUCKET, Key=f"dags/manifests/{versions[-2]}.json")["Body"].read()
    )
    referenced |= {e.sha256 for e in previous.files.values()}
    assert keys(s3, "dags/objects/") == sorted(f"dags/objects/{sha}" for sha in referenced)


def test_prune_reports_deleted_objects(run_module, s3, src, validated):
    publish_versions(run_module, s3, src, 2, keep_versions=1)
    write(src, {"lib/util.py": "X = 99\n"})
    result = publish(run_module, src, keep_versions=1)
    assert result["deleted_objects"] == 1  # the util.py of the version before


def test_prune_keeps_the_bundles_of_kept_versions(run_module, s3, big_src, validated):
    first = publish(run_module, big_src)["version"]
    old_bundle = bundle_of(s3)
    backdate_history(s3)
    write(big_src, {f"m{i:02}.py": f"Y = {i}\n" for i in range(17)})
    assert publish(run_module, big_src)["bundle"] == "new"
    bundle = bundle_of(s3)
    backdate_history(s3)
    write(big_src, {"m00.py": "Z = 0\n"})
    result = publish(run_module, big_src, keep_versions=1)
    assert result["bundle"] == "reused" and result["deleted_objects"] >= 1
    assert f"dags/manifests/{first}.json" not in keys(s3, "dags/manifests/")
    objects = keys(s3, "dags/objects/")
    assert f"dags/objects/{bundle.sha256}" in objects and f"dags/objects/{old_bundle.sha256}" not in objects


def test_one_file_changes_keep_reusing_the_bundle_after_pruning(run_module, s3, big_src, validated):
    """A one-file change stays one upload (the module's documented promise), also once the version the
    bundle was built from has left the history: pruning must not make the next publish rebuild it."""
    publish(run_module, big_src)
    bundle = bundle_of(s3)
    for i in range(4):  # only m00.py ever differs from the bundle
        backdate_history(s3)
        write(big_src, {"m00.py": f"Z = {i}\n"})
        result = publish(run_module, big_src, keep_versions=2)
        assert (result["bundle"], result["uploaded"]) == ("reused", 1), f"publish {i + 2}"
    assert bundle_of(s3) == bundle


def backdate_history(s3):
    for key in keys(s3, "dags/manifests/"):
        backdate(key, 1)


def test_prune_deletes_nothing_when_a_kept_manifest_is_unreadable(run_module, s3, src, validated):
    versions = publish_versions(run_module, s3, src, 2)
    s3.put_object(Bucket=BUCKET, Key=f"dags/manifests/{versions[0]}.json", Body=b"corrupt")
    write(src, {"lib/util.py": "X = 99\n"})
    result = publish(run_module, src, keep_versions=2)
    assert result["changed"] and result["deleted_objects"] == 0
    assert len(keys(s3, "dags/manifests/")) == 3


# --- errors -----------------------------------------------------------------------------------------


def test_missing_bucket(run_module, aws, src, validated):
    result = publish(run_module, src)
    assert result["failed"]
    assert result["msg"] == f"Bucket {BUCKET} does not exist: run the storage stage first (--tags storage)"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("GetObject", f"Failed to read dags/manifest.json (s3://{BUCKET}/dags/)"),
        ("PutObject", f"Failed to upload DAG files (s3://{BUCKET}/dags/)"),
        ("ListObjectsV2", f"Failed to list the manifest history (s3://{BUCKET}/dags/)"),
    ],
)
def test_aws_errors(run_module, s3, src, validated, aws, operation, message):
    aws.fail(operation, "AccessDenied", status=403)
    result = publish(run_module, src)
    assert result["failed"] and result["msg"].startswith(message)
    assert result["error"]["code"] == "AccessDenied"


def test_a_failed_history_listing_leaves_the_bucket_untouched(run_module, s3, src, validated, aws):
    """The history is listed (what to prune) before the first write: its failure changes nothing."""
    (first,) = publish_versions(run_module, s3, src, 1)
    before = keys(s3)
    write(src, {"lib/util.py": "X = 'new'\n"})
    aws.forget()
    aws.fail("ListObjectsV2", "AccessDenied", status=403, times=1)
    result = publish(run_module, src)
    assert result["failed"] and result["msg"].startswith(f"Failed to list the manifest history (s3://{BUCKET}/dags/)")
    assert aws.count("PutObject") == aws.count("DeleteObjects") == 0
    assert keys(s3) == before and live(s3).version == first


@pytest.mark.parametrize("failing", ["manifest", "objects"])
def test_a_failed_prune_read_leaves_the_bucket_untouched(run_module, s3, src, validated, aws, failing):
    """With versions to prune, the kept manifests are read and the objects listed before anything is written."""
    first, second = publish_versions(run_module, s3, src, 2, keep_versions=1)
    before = keys(s3)
    write(src, {"lib/util.py": "X = 'new'\n"})
    aws.forget()
    if failing == "manifest":

        def refuse_history(call, params):
            if params["Key"].startswith("dags/manifests/"):
                raise client_error("GetObject", "AccessDenied", status=403)
            return call()

        aws.answer("GetObject", refuse_history)
        message = f"Failed to read dags/manifests/{second}.json (s3://{BUCKET}/dags/)"
    else:

        def refuse_objects(call, params):
            if params["Prefix"] == "dags/objects/":
                raise client_error("ListObjectsV2", "AccessDenied", status=403)
            return call()

        aws.answer("ListObjectsV2", refuse_objects)
        message = f"Failed to prune the manifest history (s3://{BUCKET}/dags/)"
    result = publish(run_module, src, keep_versions=1)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert aws.count("PutObject") == aws.count("DeleteObjects") == 0
    assert keys(s3) == before and live(s3).version == second and first


def test_the_published_version_is_what_dag_notify_is_given(run_module, s3, src, validated, aws, http_server):
    """The role's flow: publish, then (changed) dag_notify with the published version."""
    from ansible_collections.dagster_ecs.fargate.plugins.modules import dag_notify

    aws.client("secretsmanager").create_secret(
        Name="dagster-ecs/basic-auth", SecretString=json.dumps({"username": "admin", "password": "pw"})
    )
    result = publish(run_module, src)
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": result["version"], "changed": True})
    args = {"url": http_server.url, "secret": "dagster-ecs/basic-auth", "version": result["version"]}
    notified = run_module(dag_notify, args)
    assert result["changed"] and notified["changed"] and notified["live"]["confirmed"]
    assert live(s3).version == notified["live"]["version"]


def test_manifest_write_error(run_module, s3, src, validated, aws):
    def refuse_manifests(call, params):
        if params["Key"].endswith(".json"):
            raise client_error("PutObject", "AccessDenied", status=403)
        return call()

    aws.answer("PutObject", refuse_manifests)
    result = publish(run_module, src)
    assert result["failed"] and result["msg"].startswith(f"Failed to write the manifest (s3://{BUCKET}/dags/)")
    assert "dags/manifest.json" not in keys(s3)


def test_prune_delete_error(run_module, s3, src, validated, aws):
    publish_versions(run_module, s3, src, 2, keep_versions=1)
    aws.fail("DeleteObjects", "AccessDenied", status=403)
    write(src, {"lib/util.py": "X = 99\n"})
    result = publish(run_module, src, keep_versions=1)
    assert result["failed"] and result["msg"].startswith("Failed to prune the manifest history")


def test_file_changed_while_publishing(run_module, s3, src, validated, monkeypatch):
    upload = dag_publish.Publisher.upload_objects

    def change_then_upload(self, directory, files, hashes, extra=None):
        (directory / "lib/util.py").write_text("X = 'changed under our feet'\n")
        return upload(self, directory, files, hashes, extra)

    monkeypatch.setattr(dag_publish.Publisher, "upload_objects", change_then_upload)
    result = publish(run_module, src)
    assert result["failed"]
    assert result["msg"] == "Failed to upload DAG files: lib/util.py changed while it was being published; run again"
    assert "dags/manifest.json" not in keys(s3)


def test_file_deleted_while_publishing(run_module, s3, src, validated, monkeypatch):
    upload = dag_publish.Publisher.upload_objects

    def delete_then_upload(self, directory, files, hashes, extra=None):
        (directory / "lib/util.py").unlink()
        return upload(self, directory, files, hashes, extra)

    monkeypatch.setattr(dag_publish.Publisher, "upload_objects", delete_then_upload)
    result = publish(run_module, src)
    assert result["failed"] and result["msg"].startswith("Failed to upload DAG files: [Errno 2]")


def test_throttled_uploads_are_retried(run_module, s3, src, validated, aws):
    aws.fail("PutObject", "Throttling", status=503, times=3)
    result = publish(run_module, src, concurrency=1)
    assert result["changed"] and len(aws.sleeps) == 3
    assert live(s3).version == result["version"]


def test_s3_slowdown_on_a_listing_is_retried(run_module, s3, src, validated, aws):
    """The history listing is paginated: its calls retry like the others (S3's SlowDown included)."""
    aws.fail("ListObjectsV2", "SlowDown", status=503, times=2)
    result = publish(run_module, src)
    assert result["changed"] and aws.count("ListObjectsV2") >= 3 and len(aws.sleeps) == 2
    assert live(s3).version == result["version"]


def test_connection_error_on_read(run_module, s3, src, validated, aws):
    aws.fail("GetObject", exception=EndpointConnectionError(endpoint_url="https://s3.example"))
    result = publish(run_module, src)
    assert result["failed"] and "Could not connect to the endpoint URL" in result["msg"]


# --- rollback ---------------------------------------------------------------------------------------


def rollback(run_module, version="previous", **extra):
    return run_module(dag_publish, {"bucket": BUCKET, "state": "rollback", "version": version, **extra})


def test_rollback_to_previous_and_back(run_module, s3, src, validated, aws):
    first, second = publish_versions(run_module, s3, src, 2)
    aws.forget()
    result = rollback(run_module)
    assert result["changed"]
    assert result["version"] == first and result["previous_version"] == second
    assert result["changed_files"] == ["lib/util.py"] and result["added"] == result["removed"] == []
    assert [item["version"] for item in result["history"]] == [second, first]
    assert result["diff"]["before_header"] == second and result["diff"]["after_header"] == first
    manifest = live(s3)
    assert manifest.version == first and manifest.previous == second
    assert manifest.created_by == "tester"
    assert [p["Key"] for p in aws.params("PutObject")] == ["dags/manifest.json"]  # no history write
    assert rollback(run_module)["version"] == second  # "previous" toggles


def test_previous_survives_pruning_after_a_rollback(run_module, s3, src, validated):
    """Roll back to an old version, publish a fix: `previous` (what the failure message tells the operator
    to roll back to) is the old version that was live until then. Pruning by publication date must not
    drop it: it was live a moment ago."""
    first, _second, _third = publish_versions(run_module, s3, src, 3, keep_versions=3)
    assert rollback(run_module, first)["version"] == first
    backdate_history(s3)
    write(src, {"lib/util.py": "X = 'fix'\n"})
    fix = publish(run_module, src, keep_versions=3)
    assert fix["previous_version"] == first
    result = rollback(run_module)
    assert not result.get("failed"), result.get("msg")
    assert result["version"] == first and result["previous_version"] == fix["version"]


def test_rollback_to_the_live_version_changes_nothing(run_module, s3, src, validated):
    first, second = publish_versions(run_module, s3, src, 2)
    result = rollback(run_module, second)
    assert not result["changed"] and result["version"] == second and result["previous_version"] == first
    assert result["files"] == 2 and result["added"] == []


def test_rollback_check_mode(run_module, s3, src, validated, aws):
    first, second = publish_versions(run_module, s3, src, 2)
    aws.forget()
    result = rollback(run_module, first, _ansible_check_mode=True)
    assert result["changed"] and result["version"] == first
    assert aws.count("PutObject") == 0 and live(s3).version == second


def test_rollback_to_an_unknown_version(run_module, s3, src, validated):
    (version,) = publish_versions(run_module, s3, src, 1)
    result = rollback(run_module, "0123456789abcdef")
    assert result["failed"]
    assert result["msg"] == f"Version 0123456789abcdef is not in the history; known versions, newest first: {version}"
    assert result["history"][0]["version"] == version


def test_rollback_with_nothing_published(run_module, s3):
    result = rollback(run_module)
    assert result["failed"] and result["msg"] == f"Nothing is published in s3://{BUCKET}/dags/: no rollback"


def test_rollback_of_a_first_version(run_module, s3, src, validated):
    (version,) = publish_versions(run_module, s3, src, 1)
    result = rollback(run_module)
    assert result["failed"] and result["msg"] == f"The live version {version} replaced none: nothing to roll back to"


def test_rollback_with_a_corrupt_live_manifest(run_module, s3):
    s3.put_object(Bucket=BUCKET, Key="dags/manifest.json", Body=b"[]")
    result = rollback(run_module)
    assert result["failed"] and result["msg"].startswith("dags/manifest.json is not a valid manifest: ")


def test_rollback_refuses_a_version_with_missing_files(run_module, s3, src, validated):
    first, _second = publish_versions(run_module, s3, src, 2)
    old = mf.Manifest.from_json(s3.get_object(Bucket=BUCKET, Key=f"dags/manifests/{first}.json")["Body"].read())
    s3.delete_object(Bucket=BUCKET, Key=f"dags/objects/{old.files['lib/util.py'].sha256}")
    result = rollback(run_module, first)
    assert result["failed"]
    assert result["msg"] == f"Version {first} cannot be restored, files missing in the bucket: ['lib/util.py']"


def test_rollback_drops_a_missing_bundle(run_module, s3, big_src, validated):
    first = publish(run_module, big_src)["version"]
    bundle = bundle_of(s3)
    write(big_src, {f"m{i:02}.py": f"Y = {i}\n" for i in range(17)})
    publish(run_module, big_src)
    s3.delete_object(Bucket=BUCKET, Key=f"dags/objects/{bundle.sha256}")
    result = rollback(run_module, first)
    assert result["changed"] and live(s3).bundle is None


def test_rollback_keeps_a_present_bundle(run_module, s3, big_src, validated):
    first = publish(run_module, big_src)["version"]
    bundle = bundle_of(s3)
    write(big_src, {f"m{i:02}.py": f"Y = {i}\n" for i in range(17)})
    publish(run_module, big_src)
    rollback(run_module, first)
    assert live(s3).bundle == bundle


def test_rollback_check_error(run_module, s3, src, validated, aws):
    first, _second = publish_versions(run_module, s3, src, 2)
    aws.fail("HeadObject", "AccessDenied", status=403)
    result = rollback(run_module, first)
    assert result["failed"] and result["msg"].startswith("Failed to check the version's files")


# --- dependency layers (requirements.txt) -----------------------------------------------------------
# uv's resolution and installation are dagster_ecs_container.layers' (tests/unit/test_layers.py runs them for
# real on local wheels); here ``layers.build`` is faked: a layer holding one module per requirement.


@pytest.fixture
def builds(monkeypatch, tmp_path):
    """The layer builder, faked: records ``(requirements, platform)`` per build; ``builds.error`` fails it."""
    from dagster_ecs_container import layers

    class Builder:
        calls = []
        error = None

        def __call__(self, requirements, target, index, cache=None, image_modules=None):
            self.calls.append((requirements, target.name))
            if self.error:
                raise layers.LayerError(self.error)
            site = Path(tempfile.mkdtemp(dir=tmp_path))
            packages = []
            for line in requirements:
                name, version = (line.split("==", 1) + [""])[:2]
                (site / f"{name}.py").write_text(f"VERSION = {version!r}\n")
                packages.append(f"{name}=={version or '1.0'}")
            return layers.Built(target, tuple(packages), layers.pack(site), 0.01)

    builder = Builder()
    monkeypatch.setattr(layers, "build", builder)
    return builder


def publish_layers(run_module, src, tmp_path, **extra):
    return publish(
        run_module,
        src,
        layer_platforms=["linux/arm64", "linux/amd64"],
        layer_cache=str(tmp_path / "cache"),
        **extra,
    )


def test_requirements_build_one_layer_per_platform(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n# a comment\n"})
    result = publish_layers(run_module, src, tmp_path)
    assert result["changed"], result
    deps = result["dependencies"]
    assert deps["state"] == "built" and deps["requirements"] == ["inflection==0.5.1"]
    assert deps["added"] == ["inflection==0.5.1"] and deps["removed"] == deps["changed"] == []
    assert [layer["platform"] for layer in deps["layers"]] == ["cp311-linux-aarch64", "cp311-linux-x86_64"]
    assert all(layer["built"] and layer["uploaded"] for layer in deps["layers"])
    manifest = live(s3)
    assert sorted(manifest.dependencies.layers) == ["cp311-linux-aarch64", "cp311-linux-x86_64"]
    for layer in manifest.dependencies.layers.values():
        assert f"dags/objects/{layer.sha256}" in keys(s3)
    # definitions.py, lib/util.py, requirements.txt and the layer (the fake builds the same bytes for both
    # platforms: one object, uploaded once)
    assert result["uploaded"] == 3 + 1
    assert "requires inflection==0.5.1\n" in result["diff"]["after"]
    # the definitions were loaded with a layer for this machine on PYTHONPATH, kept in the cache
    site = validated.envs[0]["PYTHONPATH"].split(":")[0]
    assert site.startswith(str(tmp_path / "cache" / "sites")) and (tmp_path / site / "inflection.py").is_file()


def test_same_requirements_build_and_upload_nothing(run_module, s3, src, validated, builds, tmp_path, aws):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    first = publish_layers(run_module, src, tmp_path)
    builds.calls.clear()
    assert not publish_layers(run_module, src, tmp_path)["changed"]
    write(src, {"lib/util.py": "X = 2\n"})  # a code-only change
    aws.forget()
    result = publish_layers(run_module, src, tmp_path)
    assert result["changed"] and result["dependencies"]["state"] == "reused"
    assert builds.calls == [] and result["uploaded"] == 1
    assert (
        live(s3).dependencies
        == mf.Manifest.from_json(
            s3.get_object(Bucket=BUCKET, Key=f"dags/manifests/{first['version']}.json")["Body"].read()
        ).dependencies
    )
    assert validated.envs[-1]["PYTHONPATH"] == validated.envs[0]["PYTHONPATH"]  # the cached validation layer


def test_a_layer_already_in_the_bucket_is_not_uploaded(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    publish_layers(run_module, src, tmp_path)
    write(src, {"requirements.txt": "humanize==1.0\n"})
    publish_layers(run_module, src, tmp_path)
    write(src, {"requirements.txt": "inflection==0.5.1\n"})  # back: same bytes, objects still kept
    result = publish_layers(run_module, src, tmp_path)
    assert result["dependencies"]["state"] == "built"
    assert not any(layer["uploaded"] for layer in result["dependencies"]["layers"])
    assert result["dependencies"]["added"] == ["inflection==0.5.1"]
    assert result["dependencies"]["removed"] == ["humanize==1.0"]


def test_a_changed_requirement_shows_in_check_mode(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    publish_layers(run_module, src, tmp_path)
    before = keys(s3)
    write(src, {"requirements.txt": "inflection==0.6\n"})
    result = publish_layers(run_module, src, tmp_path, _ansible_check_mode=True)
    assert result["changed"] and result["dependencies"]["changed"] == ["inflection==0.5.1 -> 0.6"]
    assert "requires inflection==0.5.1\n" in result["diff"]["before"]
    assert "requires inflection==0.6\n" in result["diff"]["after"]
    assert keys(s3) == before
    assert len(list((tmp_path / "cache" / "sites").iterdir())) == 1  # the first publish's; check mode kept none


def test_check_mode_keeps_no_cache(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    result = publish_layers(run_module, src, tmp_path, _ansible_check_mode=True)
    assert result["changed"] and keys(s3) == []
    assert not (tmp_path / "cache").exists()


def test_a_layer_that_cannot_be_built_publishes_nothing(run_module, s3, src, validated, builds, tmp_path):
    publish_layers(run_module, src, tmp_path)
    before = keys(s3)
    write(src, {"requirements.txt": "nosuchpkg\n"})
    builds.error = "the DAG dependencies cannot be resolved for cp311-linux-aarch64: nosuchpkg was not found"
    result = publish_layers(run_module, src, tmp_path)
    assert result["failed"]
    assert result["msg"] == f"The DAGs' dependencies in {src} cannot be used, nothing was published: {builds.error}"
    assert keys(s3) == before and validated.calls == [validated.calls[0]]


def test_pyproject_dependencies_are_refused(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"pyproject.toml": '[project]\nname = "dags"\ndependencies = ["inflection"]\n'})
    result = publish_layers(run_module, src, tmp_path)
    assert result["failed"] and "declares dependencies" in result["msg"] and "requirements.txt" in result["msg"]
    assert keys(s3) == []


def test_a_platform_added_rewrites_the_same_version(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    first = publish(run_module, src, layer_cache=str(tmp_path / "cache"))
    assert sorted(live(s3).dependencies.layers) == ["cp311-linux-aarch64"]
    builds.calls.clear()
    result = publish_layers(run_module, src, tmp_path)
    assert result["changed"] and result["version"] == first["version"]
    assert builds.calls == [(("inflection==0.5.1",), "cp311-linux-x86_64")]
    assert sorted(live(s3).dependencies.layers) == ["cp311-linux-aarch64", "cp311-linux-x86_64"]
    assert live(s3).previous == first["previous_version"]


def test_rollback_restores_the_version_with_its_layers(run_module, s3, src, validated, builds, tmp_path):
    without = publish_layers(run_module, src, tmp_path)["version"]
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    with_layer = publish_layers(run_module, src, tmp_path)["version"]
    result = rollback(run_module, without)
    assert result["changed"] and live(s3).dependencies is None
    assert "requires inflection==0.5.1\n" in result["diff"]["before"] and "requires" not in result["diff"]["after"]
    rollback(run_module, with_layer)
    assert sorted(live(s3).dependencies.layers) == ["cp311-linux-aarch64", "cp311-linux-x86_64"]


def test_rollback_refuses_a_version_whose_layer_is_gone(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    first = publish_layers(run_module, src, tmp_path)["version"]
    layer = live(s3).dependencies.layers["cp311-linux-x86_64"]
    write(src, {"requirements.txt": "", "lib/util.py": "X = 3\n"})
    publish_layers(run_module, src, tmp_path)
    s3.delete_object(Bucket=BUCKET, Key=f"dags/objects/{layer.sha256}")
    result = rollback(run_module, first)
    assert result["failed"] and "dependency layer cp311-linux-x86_64" in result["msg"]


def test_pruning_removes_layers_no_kept_version_references(run_module, s3, src, validated, builds, tmp_path):
    write(src, {"requirements.txt": "inflection==0.5.1\n"})
    publish_layers(run_module, src, tmp_path)
    old = live(s3).dependencies.layers
    for key in keys(s3, "dags/manifests/"):
        backdate(key, 5)
    write(src, {"requirements.txt": "humanize==1.0\n"})
    for key in keys(s3, "dags/manifests/"):
        backdate(key, 5)
    publish_layers(run_module, src, tmp_path)
    for key in keys(s3, "dags/manifests/"):
        backdate(key, 5)
    write(src, {"requirements.txt": "humanize==1.0\n", "lib/util.py": "X = 9\n"})
    publish_layers(run_module, src, tmp_path, keep_versions=1)  # keeps the live one and the one it replaced
    kept = set(keys(s3))
    assert all(f"dags/objects/{layer.sha256}" not in kept for layer in old.values())
    for layer in live(s3).dependencies.layers.values():
        assert f"dags/objects/{layer.sha256}" in kept

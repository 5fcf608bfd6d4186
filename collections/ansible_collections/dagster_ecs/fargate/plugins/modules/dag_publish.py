#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dag_publish
short_description: Publish a Dagster DAG directory to S3 as a validated, content-addressed version
version_added: 0.1.0
description:
  - Validates the DAG directory first, by loading its Dagster definitions in a separate interpreter; a syntax,
    import or definitions error fails the task naming the file and the error, and nothing is written (the only AWS
    call before it is the live manifest's read). Content identical to the live version is not loaded again.
  - Uploads only file contents the live version does not already reference (objects are named by their SHA-256),
    then writes the version's manifest to the history and, last, the live manifest — the commit point the
    containers' sync polls. Files deleted locally are absent from the new manifest.
  - Nothing changed (same content as the live version) means one request, the live manifest's read, and
    C(changed=false).
  - With O(state=rollback), points the live manifest at an earlier version from the history, after checking that
    every object it needs is still in the bucket.
  - Keeps the last O(keep_versions) manifests for rollback and deletes objects no kept manifest references.
  - Versions of 8 files or more also get a bundle (one deterministic tar.gz) that a task starting with no DAGs
    downloads in one request; it is rebuilt only when more than max(16, 10 %) of the files differ from it, so a
    one-file change stays one upload.
  - Supports check mode and diff mode (the diff lists every file with its hash; the result lists added, changed
    and removed files).
  - The manifest format is defined once, in the C(dagster_ecs_container.manifest) Python module, which the
    container's sync also uses.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
requirements:
  - dagster-ecs-container (the project's container package; C(make venv) installs it)
options:
  bucket:
    description: The DAG bucket.
    type: str
    required: true
  prefix:
    description: Key prefix of the manifest, the history and the objects.
    type: str
    default: dags/
  state:
    description:
      - V(present) publishes O(src).
      - V(rollback) makes the version O(version) live again.
    type: str
    choices: [present, rollback]
    default: present
  src:
    description:
      - The DAG directory (it must contain O(definitions_module)C(.py)). Caches, tests and hidden files are not
        published.
      - Required with O(state=present).
    type: path
  version:
    description:
      - With O(state=rollback), the version to make live, or V(previous) for the one the live version replaced.
    type: str
  validate:
    description: Load the definitions before publishing. Turn off only for directories that are not Dagster code.
    type: bool
    default: true
  python:
    description:
      - Interpreter that loads the definitions (it needs the pinned Dagster and C(dagster_ecs_container)).
      - Defaults to the interpreter running this module (the project's venv).
    type: path
  definitions_module:
    description: Module in O(src) that defines C(defs = dagster.Definitions(...)).
    type: str
    default: definitions
  validate_timeout:
    description: Seconds the definitions may take to load.
    type: int
    default: 180
  keep_versions:
    description: Manifests kept in the history for rollback (the live one is always kept).
    type: int
    default: 10
  created_by:
    description: Who publishes, recorded in the manifest. Defaults to C(user@host).
    type: str
  concurrency:
    description: Parallel uploads (and existence checks on rollback).
    type: int
    default: 16
  notify_url:
    description:
      - Base URL of the Dagster webserver (the load balancer). When the task changed the live version, the module
        asks the webserver to poll the manifest at once (C(POST /_dags/sync), basic auth) and waits for the answer,
        instead of leaving the version to the next poll of each task.
      - A webserver that does not answer is not an error (it takes the version when it starts or at its next poll);
        one that refuses the version (its definitions do not load in the image) fails the task, with the version
        already published, naming the rollback.
      - Not used in check mode or when nothing changed.
    type: str
  notify_secret:
    description: Secrets Manager secret holding the basic-auth credentials as JSON C(username) and C(password).
    type: str
  notify_timeout:
    description: Seconds to wait for the webserver to stage, check and load the new version.
    type: int
    default: 60
  allow_plain_http:
    description:
      - Send the basic-auth credentials of O(notify_secret) over plain HTTP to a O(notify_url) whose host is not
        loopback (127.0.0.0/8, C(::1), C(localhost)). Off by default, the module then fails before any AWS call,
        naming O(notify_url) and the fix, since the password would cross the network in clear text.
      - HTTPS and loopback URLs are never refused, nor is a task without O(notify_url).
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Publish the DAGs (validated; only what changed is uploaded)
  dagster_ecs.fargate.dag_publish:
    bucket: dagster-ecs-dags-123456789012-ap-southeast-2
    src: "{{ playbook_dir }}/../dags"

- name: Roll back to the version the live one replaced
  dagster_ecs.fargate.dag_publish:
    bucket: dagster-ecs-dags-123456789012-ap-southeast-2
    state: rollback
    version: previous
"""

RETURN = r"""
version:
  description: The live version after the task (the manifest's content hash).
  returned: always
  type: str
  sample: 3f6c2a9e81d04b7c
previous_version:
  description: The version that was live before the task, if any.
  returned: always
  type: str
  sample: 0b1d9e2c4a6f8e10
added:
  description: Files in the new version that the previous one did not have.
  returned: always
  type: list
  elements: str
changed_files:
  description: Files whose content changed.
  returned: always
  type: list
  elements: str
removed:
  description: Files of the previous version that the new one no longer has.
  returned: always
  type: list
  elements: str
uploaded:
  description: Objects uploaded (0 when nothing changed), the bundle included when a new one was built.
  returned: always
  type: int
bundle:
  description:
    - V(new) when a new bundle (one tar.gz of the version, what a task starting cold downloads in one request) was
      uploaded, V(reused) when the previous bundle still holds most files (or the version is unchanged and has a
      bundle), V(none) for versions under 8 files.
  returned: with state=present
  type: str
deleted_objects:
  description: Objects deleted because no kept manifest references them.
  returned: always
  type: int
assets:
  description: Asset keys the definitions define (from the validation).
  returned: when validated
  type: list
  elements: str
files:
  description: Number of files in the live version.
  returned: always
  type: int
manifest_key:
  description: Key of the live manifest.
  returned: always
  type: str
  sample: dags/manifest.json
history:
  description: Versions in the history, newest first (on rollback).
  returned: with state=rollback
  type: list
  elements: dict
live:
  description:
    - What the webserver made live when O(notify_url) was given and the live version changed.
    - C(confirmed) is true when the webserver serves the published version; C(error) says why not.
  returned: when the webserver was notified
  type: dict
  sample: {"url": "http://127.0.0.1:8080", "confirmed": true, "version": "3f6c2a9e81d04b7c", "seconds": 3.1}
"""

import getpass
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError, URLError

try:
    from botocore.config import Config
except ImportError:  # AnsibleAWSModule reports the missing library
    Config = None

try:
    from dagster_ecs_container import inspect as definitions
    from dagster_ecs_container import manifest as mf

    HAS_MANIFEST = True
except ImportError:
    definitions = mf = None
    HAS_MANIFEST = False

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.urls import open_url
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, client, paginate
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.dags import (
    bundle_is_stale,
    listing,
    objects_to_upload,
    plan,
    prune_plan,
)
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.plain_http import plain_http_refusal

JSON = "application/json"


class Publisher:
    def __init__(self, module, s3):
        self.module = module
        self.s3 = s3
        self.bucket = module.params["bucket"]
        self.prefix = module.params["prefix"]
        self.concurrency = max(1, module.params["concurrency"])

    def key(self, name):
        return mf.key(self.prefix, name)

    def fail_aws(self, error, what):
        self.module.fail_json_aws(error, msg=f"Failed to {what} (s3://{self.bucket}/{self.prefix})")

    # --- reads ---------------------------------------------------------------------------
    def read_manifest(self, name, required=False):
        """The manifest at ``name`` (None when absent; a corrupt live manifest is replaced, with a warning)."""
        try:
            body = self.s3.get_object(aws_retry=True, Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except is_boto3_error_code(["NoSuchKey", "404"]):
            return None
        except is_boto3_error_code("NoSuchBucket"):
            self.module.fail_json(
                msg=f"Bucket {self.bucket} does not exist: run the storage stage first (--tags storage)"
            )
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            self.fail_aws(e, f"read {self.key(name)}")
        try:
            return mf.Manifest.from_json(body)
        except mf.ManifestError as exc:
            if required:
                self.module.fail_json(msg=f"{self.key(name)} is not a valid manifest: {exc}")
            self.module.warn(f"The live manifest {self.key(name)} is not valid ({exc}); it will be replaced.")
            return None

    def history(self):
        """``[(version, last_modified)]`` of every manifest in the history."""
        found = []
        prefix = self.key(mf.HISTORY)
        try:
            for item in paginate(self.s3, "list_objects_v2", Bucket=self.bucket, Prefix=prefix).get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name.endswith(".json") and "/" not in name:
                    found.append((name[: -len(".json")], item["LastModified"]))
        except BOTO_ERRORS as e:
            self.fail_aws(e, "list the manifest history")
        return found

    # --- writes --------------------------------------------------------------------------
    def put(self, key, body, content_type):
        self.s3.put_object(
            aws_retry=True, Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, CacheControl="no-cache"
        )

    def upload_objects(self, src, files, hashes, extra=None):
        """Upload the objects ``hashes`` (file contents from ``src``, or bytes given in ``extra``)."""
        by_hash = {}
        for path, entry in files.items():
            by_hash.setdefault(entry.sha256, path)
        extra = extra or {}

        def _one(sha256):
            if sha256 in extra:
                self.put(self.key(mf.OBJECTS + sha256), extra[sha256], "application/gzip")
                return
            data = (src / by_hash[sha256]).read_bytes()
            if mf.sha256_bytes(data) != sha256:
                raise RuntimeError(f"{by_hash[sha256]} changed while it was being published; run again")
            self.put(self.key(mf.OBJECTS + sha256), data, "application/octet-stream")

        self._parallel(_one, hashes, "upload DAG files")

    def missing_objects(self, files):
        def _one(sha256):
            try:
                self.s3.head_object(aws_retry=True, Bucket=self.bucket, Key=self.key(mf.OBJECTS + sha256))
            except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
                return sha256
            return None

        hashes = sorted({entry.sha256 for entry in files.values()})
        missing = set(filter(None, self._parallel(_one, hashes, "check the version's files")))
        return sorted(path for path, entry in files.items() if entry.sha256 in missing)

    def _parallel(self, function, items, what):
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(function, items))
        except BOTO_ERRORS as e:
            self.fail_aws(e, what)
        except (OSError, RuntimeError) as exc:
            self.module.fail_json(msg=f"Failed to {what}: {exc}")

    def commit(self, manifest, write_history=True):
        """History first, then the live manifest: the commit point."""
        body = manifest.to_json().encode()
        try:
            if write_history:
                self.put(self.key(f"{mf.HISTORY}{manifest.version}.json"), body, JSON)
            self.put(self.key(mf.MANIFEST), body, JSON)
        except BOTO_ERRORS as e:
            self.fail_aws(e, "write the manifest")

    def prune(self, live, keep):
        """Delete manifests beyond ``keep`` and the objects no kept manifest references. Returns objects deleted."""
        history = self.history()
        if len(history) <= keep:
            return 0
        drop, kept = prune_plan(history, live.version, keep)
        # Also kept: what `rollback previous` restores, and the version the live bundle was built from
        # (the next publish compares the bundle with that version's files).
        for version in (live.previous, live.bundle.version if live.bundle else None):
            if version in drop:
                drop.remove(version)
                kept.append(version)
        referenced = set()
        for version in kept:
            kept_manifest = self.read_manifest(f"{mf.HISTORY}{version}.json")
            if kept_manifest is None:
                return 0  # cannot tell what is referenced: delete nothing
            referenced.update(entry.sha256 for entry in kept_manifest.files.values())
            if kept_manifest.bundle:
                referenced.add(kept_manifest.bundle.sha256)
        prefix = self.key(mf.OBJECTS)
        try:
            listing = paginate(self.s3, "list_objects_v2", Bucket=self.bucket, Prefix=prefix)
            objects = [item["Key"] for item in listing.get("Contents", [])]
            doomed = [key for key in objects if key[len(prefix) :] not in referenced]
            doomed += [self.key(f"{mf.HISTORY}{version}.json") for version in drop]
            for start in range(0, len(doomed), 1000):
                batch = [{"Key": key} for key in doomed[start : start + 1000]]
                self.s3.delete_objects(aws_retry=True, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except BOTO_ERRORS as e:
            self.fail_aws(e, "prune the manifest history")
        return len([key for key in doomed if key.startswith(prefix)])


def _diff(before, after):
    return {
        "before_header": f"{before.version if before else '(nothing published)'}",
        "after_header": after.version,
        "before": listing(before.files if before else {}),
        "after": listing(after.files),
    }


def notify(module, version):
    """Ask the webserver to take ``version`` now; what it answered (never raises for an unreachable one)."""
    params = module.params
    url = params["notify_url"].rstrip("/") + "/_dags/sync"
    live = {"url": params["notify_url"], "confirmed": False}
    try:
        secret = client(module, "secretsmanager").get_secret_value(SecretId=params["notify_secret"])
        credentials = json.loads(secret["SecretString"])
        username, password = credentials["username"], credentials["password"]
    except BOTO_ERRORS as exc:  # the version is published: the tasks take it at their next poll
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        live["error"] = f"cannot read the basic-auth credentials {params['notify_secret']} ({code})"
        module.warn(f"Not notifying the webserver: {live['error']}")
        return live
    except (KeyError, TypeError, ValueError):
        live["error"] = f"secret {params['notify_secret']} is not JSON with username and password"
        module.warn(f"Not notifying the webserver: {live['error']}")
        return live
    started = time.monotonic()
    try:
        response = open_url(
            url,
            method="POST",
            url_username=username,
            url_password=password,
            force_basic_auth=True,
            timeout=params["notify_timeout"],
            headers={"Content-Type": JSON},
        )
        answer = json.loads(response.read() or b"{}")
    except HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}") if exc.code == 409 else {}
        except ValueError:
            answer = {}
        if exc.code != 409:
            live["error"] = f"HTTP {exc.code} from {url}"
            return live
    except (URLError, OSError, ValueError) as exc:
        live["error"] = f"no answer from {url}: {exc}"
        return live
    live.update(
        confirmed=answer.get("version") == version,
        version=answer.get("version"),
        seconds=answer.get("seconds", round(time.monotonic() - started, 2)),
    )
    if answer.get("last_error"):
        live["error"] = answer["last_error"]
    return live


def finish(module, changed, version, result):
    """Exit, first making the new version live on the webserver when asked to."""
    if changed and not module.check_mode and module.params["notify_url"]:
        result["live"] = live = notify(module, version)
        if not live["confirmed"] and live.get("version") and live.get("error"):
            module.fail_json(
                msg=f"DAG version {version} is published, but the webserver refused it and keeps "
                f"{live['version']}: {live['error']}. Fix the DAGs and publish again, or roll back "
                "(-e dags_rollback_to=previous).",
                changed=True,
                **result,
            )
    module.exit_json(changed=changed, **result)


def publish(module, publisher):
    params = module.params
    src = Path(params["src"])
    if not src.is_dir():
        module.fail_json(msg=f"DAG directory {src} does not exist")
    files = mf.scan(src)
    if not files:
        module.fail_json(msg=f"DAG directory {src} holds no files to publish; nothing was uploaded")
    current = publisher.read_manifest(mf.MANIFEST)
    assets = []
    if current is not None and current.version == mf.version_of(files):
        # Already live, so it was checked when it was published (and is checked again by every task's
        # code server): nothing to upload, nothing to load. One request.
        assets = current.assets
    elif params["validate"]:
        ok, result = definitions.run(
            params["python"] or sys.executable, src, params["definitions_module"], params["validate_timeout"]
        )
        if not ok:
            where = f"{result.get('file')}: " if result.get("file") else ""
            module.fail_json(
                msg=f"The DAGs in {src} do not load, nothing was published. {where}{result.get('error')}",
                file=result.get("file"),
                error=result.get("error"),
            )
        assets = result.get("assets", [])

    created_by = params["created_by"] or f"{getpass.getuser()}@{socket.gethostname()}"
    desired = mf.Manifest(
        files=files, assets=assets, created_by=created_by, previous=current.version if current else None
    )
    unchanged = current is not None and current.version == desired.version
    # An unchanged version keeps the live manifest, and with it the bundle it has (or not).
    bundle, bundle_bytes, bundle_state = None, {}, "reused" if unchanged and current.bundle else "none"
    if not unchanged and len(files) >= mf.BUNDLE_MIN_FILES:
        bundle, bundle_state = (current.bundle if current else None), "reused"
        if bundle:
            base = (
                current
                if bundle.version == current.version
                else publisher.read_manifest(f"{mf.HISTORY}{bundle.version}.json")
            )
            if bundle_is_stale(base.files if base else None, files):
                bundle = None
        if bundle is None:
            data = mf.make_bundle(src, files)
            bundle, bundle_state = mf.Bundle(mf.sha256_bytes(data), len(data), desired.version), "new"
            bundle_bytes = {bundle.sha256: data}
        desired.bundle = bundle
    added, changed, removed = plan(current.files if current else {}, files)
    result = dict(
        version=desired.version,
        previous_version=current.version if current else None,
        added=added,
        changed_files=changed,
        removed=removed,
        uploaded=0,
        deleted_objects=0,
        assets=assets,
        files=len(files),
        manifest_key=publisher.key(mf.MANIFEST),
        bundle=bundle_state,
    )
    if unchanged:
        result["previous_version"] = current.previous
        module.exit_json(changed=False, **result)
    hashes = objects_to_upload(current.files if current else {}, files) + sorted(bundle_bytes)
    result["uploaded"] = len(hashes)
    if not module.check_mode:
        publisher.upload_objects(src, files, hashes, extra=bundle_bytes)
        publisher.commit(desired)
        result["deleted_objects"] = publisher.prune(desired, params["keep_versions"])
    finish(module, True, desired.version, dict(diff=_diff(current, desired), **result))


def rollback(module, publisher):
    params = module.params
    current = publisher.read_manifest(mf.MANIFEST, required=True)
    if current is None:
        module.fail_json(msg=f"Nothing is published in s3://{publisher.bucket}/{publisher.prefix}: no rollback")
    history = sorted(publisher.history(), key=lambda item: item[1], reverse=True)
    listed = [{"version": version, "published": when.isoformat()} for version, when in history]
    target_version = params["version"]
    if target_version == "previous":
        target_version = current.previous
        if not target_version:
            module.fail_json(msg=f"The live version {current.version} replaced none: nothing to roll back to")
    result = dict(
        previous_version=current.version,
        uploaded=0,
        deleted_objects=0,
        manifest_key=publisher.key(mf.MANIFEST),
        history=listed,
    )
    if target_version == current.version:
        module.exit_json(
            changed=False,
            version=current.version,
            added=[],
            changed_files=[],
            removed=[],
            assets=current.assets,
            files=len(current.files),
            **{**result, "previous_version": current.previous},
        )
    target = publisher.read_manifest(f"{mf.HISTORY}{target_version}.json", required=True)
    if target is None:
        module.fail_json(
            msg=f"Version {target_version} is not in the history; known versions, newest first: "
            + (", ".join(item["version"] for item in listed) or "none"),
            history=listed,
        )
    missing = publisher.missing_objects(target.files)
    if missing:
        module.fail_json(msg=f"Version {target_version} cannot be restored, files missing in the bucket: {missing}")
    bundle = target.bundle
    if bundle and publisher.missing_objects({"bundle": mf.FileEntry(bundle.sha256, bundle.size)}):
        bundle = None  # an optimisation only: tasks then download the files one by one
    restored = mf.Manifest(
        files=target.files,
        assets=target.assets,
        created_at=target.created_at,
        created_by=target.created_by,
        previous=current.version,
        bundle=bundle,
    )
    added, changed, removed = plan(current.files, target.files)
    if not module.check_mode:
        publisher.commit(restored, write_history=False)
    finish(
        module,
        True,
        restored.version,
        dict(
            diff=_diff(current, restored),
            version=restored.version,
            added=added,
            changed_files=changed,
            removed=removed,
            assets=restored.assets,
            files=len(restored.files),
            **result,
        ),
    )


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default="dags/"),
            state=dict(type="str", choices=["present", "rollback"], default="present"),
            src=dict(type="path"),
            version=dict(type="str"),
            validate=dict(type="bool", default=True),
            python=dict(type="path"),
            definitions_module=dict(type="str", default="definitions"),
            validate_timeout=dict(type="int", default=180),
            keep_versions=dict(type="int", default=10),
            created_by=dict(type="str"),
            concurrency=dict(type="int", default=16),
            notify_url=dict(type="str"),
            # The secret's name or ARN, not its value.
            notify_secret=dict(type="str", no_log=False),
            notify_timeout=dict(type="int", default=60),
            allow_plain_http=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["src"]), ("state", "rollback", ["version"])],
        required_by={"notify_url": ["notify_secret"]},
        supports_check_mode=True,
    )
    if not HAS_MANIFEST:
        module.fail_json(msg=missing_required_lib("dagster-ecs-container (make venv installs it)"))
    if module.params["keep_versions"] < 1:
        module.fail_json(msg="keep_versions must be at least 1 (the live version is always kept)")
    if module.params["notify_url"]:  # with notify_secret (required_by): the credentials are sent to it
        refusal = plain_http_refusal(module.params["notify_url"], allow_plain_http=module.params["allow_plain_http"])
        if refusal:
            undone = "published" if module.params["state"] == "present" else "rolled back"
            module.fail_json(msg=f"{refusal} Nothing was {undone}.", notify_url=module.params["notify_url"])
    config = Config(max_pool_connections=max(10, module.params["concurrency"])) if Config else None
    publisher = Publisher(module, client(module, "s3", config=config))
    if module.params["state"] == "present":
        publish(module, publisher)
    else:
        rollback(module, publisher)


if __name__ == "__main__":
    main()

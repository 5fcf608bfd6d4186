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
    container's sync also uses; what a publish writes (bundle, pruning) is decided in
    C(dagster_ecs_container.plan).
  - Every check that can fail runs before the first write (the directory, the bucket, the live manifest, the
    definitions, on rollback the version and its objects); a failure then leaves the bucket as it was.
  - The DAG directory may declare extra Python dependencies in C(requirements.txt) (name and version specifiers
    only; a C(pyproject.toml) that declares dependencies is refused). They are resolved with uv against the image's
    pins (the Dagster family and everything the image ships cannot change this way), installed from binary wheels
    for each of O(layer_platforms) and packed as one deterministic layer per platform, stored as an object and named
    by the manifest. A conflict, an unknown package or a package without a wheel for a platform fails before
    anything is uploaded, naming it. The same requirements and image pins as the live version reuse its layers
    (nothing resolved, built or uploaded); a layer already in the bucket is not uploaded again.
  - To have the webserver take the new version at once instead of at its next poll, run
    M(dagster_ecs.fargate.dag_notify) after this task when it changed the live version.
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
  layer_platforms:
    description:
      - Platforms to build the dependency layers for (only when O(src) has a C(requirements.txt)).
      - V(linux/arm64) and V(linux/amd64) are the tasks' (C(ecs_cpu_architecture)), with CPython O(python_version);
        V(host) is the platform of the interpreter running this module (the offline profile's tasks run there).
      - The definitions are validated with a layer for this interpreter, built here when it is none of these.
    type: list
    elements: str
    default: [linux/arm64]
  python_version:
    description: CPython version of the image (C(major.minor)), what the tasks' layers are built for.
    type: str
    default: "3.11"
  index_url:
    description:
      - Package index uv resolves and downloads from (default PyPI). It may carry credentials; it is passed to uv
        through its environment, never its arguments, and masked in errors.
    type: str
  find_links:
    description: Directories or URLs of wheels uv also looks in.
    type: list
    elements: str
    default: []
  no_index:
    description: Look only in O(find_links), not in any package index.
    type: bool
    default: false
  layer_timeout:
    description: Seconds one resolution or installation may take.
    type: int
    default: 600
  layer_cache:
    description:
      - Directory where uv's download cache and the layers used for validation are kept. Nothing is written there
        in check mode.
    type: path
    default: ~/.cache/dagster-ecs/layers
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
  register: dags_rollback

- name: Ask the webserver to take it now
  dagster_ecs.fargate.dag_notify:
    url: https://dagster.example.com
    secret: dagster-ecs/basic-auth
    version: "{{ dags_rollback.version }}"
  when: dags_rollback is changed
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
dependencies:
  description:
    - The version's declared dependencies (empty when it declares none) and what happened to their layers.
    - C(state) is V(none), V(reused) (the live version's layers) or V(built); C(added), C(removed) and C(changed)
      compare the packages with the live version's; each layer says whether it was built and uploaded, its size and
      seconds.
  returned: with state=present
  type: dict
  sample:
    state: built
    requirements: [inflection==0.5.1]
    packages: [inflection==0.5.1]
    added: [inflection==0.5.1]
    removed: []
    changed: []
    layers:
      - {platform: cp311-linux-aarch64, sha256: 5c1f..., size: 14512, built: true, uploaded: true, seconds: 0.4}
history:
  description: Versions in the history, newest first (on rollback).
  returned: with state=rollback
  type: list
  elements: dict
"""

import getpass
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    from botocore.config import Config
except ImportError:  # AnsibleAWSModule reports the missing library
    Config = None

try:
    from dagster_ecs_container import inspect as definitions
    from dagster_ecs_container import layers, plan
    from dagster_ecs_container import manifest as mf

    HAS_MANIFEST = True
except ImportError:
    definitions = layers = mf = plan = None
    HAS_MANIFEST = False

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, client, paginate
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.dags import diff

JSON = "application/json"


class Publisher:
    """The bucket side: reads (before any write), uploads, the commit, deletions."""

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

    def list_keys(self, name, what):
        """``[(key, last_modified)]`` of the objects below ``name``."""
        try:
            found = paginate(self.s3, "list_objects_v2", Bucket=self.bucket, Prefix=self.key(name))
        except BOTO_ERRORS as e:
            self.fail_aws(e, what)
        return [(item["Key"], item["LastModified"]) for item in found.get("Contents", [])]

    def history(self):
        """``[(version, last_modified)]`` of every manifest in the history."""
        prefix = self.key(mf.HISTORY)
        listed = self.list_keys(mf.HISTORY, "list the manifest history")
        found = [(mf.history_version(key[len(prefix) :]), modified) for key, modified in listed]
        return [(version, modified) for version, modified in found if version]

    def missing_objects(self, files):
        def _one(sha256):
            try:
                self.s3.head_object(aws_retry=True, Bucket=self.bucket, Key=self.key(mf.object_name(sha256)))
            except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
                return sha256
            return None

        hashes = sorted({entry.sha256 for entry in files.values()})
        missing = set(filter(None, self._parallel(_one, hashes, "check the version's files")))
        return sorted(path for path, entry in files.items() if entry.sha256 in missing)

    def prune_plan(self, live, keep):
        """Keys to delete once ``live`` is committed: history beyond ``keep``, objects no kept manifest references.

        Reads only, so that a listing or a read that fails does so before anything is written.
        """
        history = plan.history_after(self.history(), live.version)
        if len(history) <= keep:
            return []
        drop, kept = plan.retained(history, live, keep)
        manifests = []
        for version in kept:
            manifest = live if version == live.version else self.read_manifest(mf.history_name(version))
            if manifest is None:
                return []  # cannot tell what is referenced: delete nothing
            manifests.append(manifest)
        objects = [key for key, _modified in self.list_keys(mf.OBJECTS, "prune the manifest history")]
        doomed = plan.unreferenced(self.prefix, objects, plan.referenced(manifests))
        return doomed + [self.key(mf.history_name(version)) for version in drop]

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
                self.put(self.key(mf.object_name(sha256)), extra[sha256], "application/gzip")
                return
            data = (src / by_hash[sha256]).read_bytes()
            if mf.sha256_bytes(data) != sha256:
                raise RuntimeError(f"{by_hash[sha256]} changed while it was being published; run again")
            self.put(self.key(mf.object_name(sha256)), data, "application/octet-stream")

        self._parallel(_one, hashes, "upload DAG files")

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
                self.put(self.key(mf.history_name(manifest.version)), body, JSON)
            self.put(self.key(mf.MANIFEST), body, JSON)
        except BOTO_ERRORS as e:
            self.fail_aws(e, "write the manifest")

    def delete(self, keys):
        """Delete ``keys`` (1,000 a request). Returns how many were objects (not manifests)."""
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                self.s3.delete_objects(aws_retry=True, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except BOTO_ERRORS as e:
            self.fail_aws(e, "prune the manifest history")
        return len([key for key in keys if key.startswith(self.key(mf.OBJECTS))])


def validate(module, src, site=None):
    """The assets of the definitions in ``src`` (with the dependency layer ``site``); fails, naming the file,
    when they do not load."""
    params = module.params
    ok, result = definitions.run(
        params["python"] or sys.executable,
        src,
        params["definitions_module"],
        params["validate_timeout"],
        env=layers.with_site(site),
    )
    if not ok:
        where = f"{result.get('file')}: " if result.get("file") else ""
        module.fail_json(
            msg=f"The DAGs in {src} do not load, nothing was published. {where}{result.get('error')}",
            file=result.get("file"),
            error=result.get("error"),
        )
    return result.get("assets", [])


def publish(module, publisher):
    params = module.params
    src = Path(params["src"])
    if not src.is_dir():
        module.fail_json(msg=f"DAG directory {src} does not exist")
    files = mf.scan(src)
    if not files:
        module.fail_json(msg=f"DAG directory {src} holds no files to publish; nothing was uploaded")
    current = publisher.read_manifest(mf.MANIFEST)
    with tempfile.TemporaryDirectory(prefix="dagster-ecs-publish-") as scratch:
        requirements, planned = dependencies(module, src, current)
        # Already live, it was checked when it was published (and is checked again by every task's code
        # server): nothing to upload, nothing to load. One request.
        live_already = plan.unchanged(current, files)
        if live_already:
            assets = current.assets
        elif params["validate"]:
            assets = validate(module, src, validation_site(module, requirements, planned, Path(scratch)))
        else:
            assets = []
    base = plan.bundle_base(current, files)
    step = plan.publish(
        current,
        files,
        assets=assets,
        created_by=params["created_by"] or f"{getpass.getuser()}@{socket.gethostname()}",
        base=publisher.read_manifest(mf.history_name(base)) if base else None,
        build_bundle=lambda: mf.make_bundle(src, files),
        dependencies=planned.dependencies,
    )
    layer_uploads = {} if step.unchanged else new_layers(publisher, planned)
    added, changed, removed = step.changes
    result = dict(
        version=step.desired.version,
        previous_version=current.version if current else None,
        added=added,
        changed_files=changed,
        removed=removed,
        uploaded=len(step.uploads),
        deleted_objects=0,
        assets=assets,
        files=len(files),
        manifest_key=publisher.key(mf.MANIFEST),
        bundle=step.bundle,
        dependencies=report(current, planned, layer_uploads),
    )
    result["uploaded"] += len(layer_uploads)
    if step.unchanged:
        module.exit_json(changed=False, **{**result, "previous_version": current.previous})
    if not module.check_mode:
        doomed = publisher.prune_plan(step.desired, params["keep_versions"])
        extra = {step.desired.bundle.sha256: step.bundle_data} if step.bundle_data else {}
        extra.update(layer_uploads)
        publisher.upload_objects(src, files, step.uploads + sorted(layer_uploads), extra=extra)
        publisher.commit(step.desired)
        result["deleted_objects"] = publisher.delete(doomed)
    module.exit_json(changed=True, diff=diff(current, step.desired), **result)


def index(module):
    params = module.params
    return layers.Index(
        url=params["index_url"],
        find_links=tuple(params["find_links"]),
        no_index=params["no_index"],
        timeout=params["layer_timeout"],
    )


def dependencies(module, src, current):
    """The declared requirements and their layers (reused, or built now); fails before any write."""
    params = module.params
    try:
        requirements = layers.declared(src)
        targets = [layers.target_from(spec, params["python_version"]) for spec in params["layer_platforms"]]
        cache = None if module.check_mode else Path(params["layer_cache"]) / "uv"
        planned = layers.plan_dependencies(
            requirements, current.dependencies if current else None, targets, index(module), cache
        )
    except layers.LayerError as exc:
        module.fail_json(msg=f"The DAGs' dependencies in {src} cannot be used, nothing was published: {exc}")
    return requirements, planned


def validation_site(module, requirements, planned, scratch):
    """The layer the definitions load with here (None: nothing declared); cached unless in check mode."""
    if planned.dependencies is None:
        return None
    check = module.check_mode
    root = scratch if check else Path(module.params["layer_cache"]) / "sites"
    try:
        return layers.validation_site(requirements, planned, index(module), root, None if check else root.parent / "uv")
    except layers.LayerError as exc:
        module.fail_json(msg=f"The DAGs' dependencies cannot be installed here to validate them: {exc}")


def new_layers(publisher, planned):
    """``{sha256: data}`` of the layers built now that the bucket does not hold yet (reads only)."""
    entries = {name: mf.FileEntry(built.sha256, len(built.data)) for name, built in planned.built.items()}
    if not entries or planned.dependencies is None:
        return {}
    used = {layer.sha256 for layer in planned.dependencies.layers.values()}
    missing = publisher.missing_objects({name: entry for name, entry in entries.items() if entry.sha256 in used})
    return {planned.built[name].sha256: planned.built[name].data for name in missing}


def report(current, planned, uploads):
    """The ``dependencies`` result: what is declared, what changed since the live version, each layer."""
    deps = planned.dependencies
    before = dict(
        p.split("==", 1) for p in (current.dependencies.packages() if current and current.dependencies else ())
    )
    after = dict(p.split("==", 1) for p in (deps.packages() if deps else ()))
    return {
        "state": "none" if deps is None else "built" if planned.built else "reused",
        "requirements": list(deps.requirements) if deps else [],
        "packages": [f"{name}=={version}" for name, version in sorted(after.items())],
        "added": [f"{n}=={v}" for n, v in sorted(after.items()) if n not in before],
        "removed": [f"{n}=={v}" for n, v in sorted(before.items()) if n not in after],
        "changed": [f"{n}=={before[n]} -> {v}" for n, v in sorted(after.items()) if n in before and before[n] != v],
        "layers": [
            {
                "platform": name,
                "sha256": layer.sha256,
                "size": layer.size,
                "packages": list(layer.packages),
                "built": name in planned.built,
                "uploaded": layer.sha256 in uploads,
                "seconds": round(planned.built[name].seconds, 2) if name in planned.built else 0,
            }
            for name, layer in sorted((deps.layers if deps else {}).items())
        ],
    }


def rollback(module, publisher):
    current = publisher.read_manifest(mf.MANIFEST, required=True)
    if current is None:
        module.fail_json(msg=f"Nothing is published in s3://{publisher.bucket}/{publisher.prefix}: no rollback")
    history = sorted(publisher.history(), key=lambda item: item[1], reverse=True)
    listed = [{"version": version, "published": when.isoformat()} for version, when in history]
    target_version = plan.rollback_target(current, module.params["version"])
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
    target = publisher.read_manifest(mf.history_name(target_version), required=True)
    if target is None:
        module.fail_json(
            msg=f"Version {target_version} is not in the history; known versions, newest first: "
            + (", ".join(item["version"] for item in listed) or "none"),
            history=listed,
        )
    layer_entries = {
        f"dependency layer {name}": mf.FileEntry(layer.sha256, layer.size)
        for name, layer in (target.dependencies.layers if target.dependencies else {}).items()
    }
    missing = publisher.missing_objects({**target.files, **layer_entries})
    if missing:
        module.fail_json(msg=f"Version {target_version} cannot be restored, files missing in the bucket: {missing}")
    bundle = target.bundle
    bundle_present = bool(bundle) and not publisher.missing_objects(
        {"bundle": mf.FileEntry(bundle.sha256, bundle.size)}
    )
    restored = plan.restored(current, target, bundle_present)
    added, changed, removed = plan.plan(current.files, restored.files)
    if not module.check_mode:
        publisher.commit(restored, write_history=False)
    module.exit_json(
        changed=True,
        diff=diff(current, restored),
        version=restored.version,
        added=added,
        changed_files=changed,
        removed=removed,
        assets=restored.assets,
        files=len(restored.files),
        **result,
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
            layer_platforms=dict(type="list", elements="str", default=["linux/arm64"]),
            python_version=dict(type="str", default="3.11"),
            index_url=dict(type="str", no_log=True),
            find_links=dict(type="list", elements="str", default=[]),
            no_index=dict(type="bool", default=False),
            layer_timeout=dict(type="int", default=600),
            layer_cache=dict(type="path", default="~/.cache/dagster-ecs/layers"),
        ),
        required_if=[("state", "present", ["src"]), ("state", "rollback", ["version"])],
        supports_check_mode=True,
    )
    if not HAS_MANIFEST:
        module.fail_json(msg=missing_required_lib("dagster-ecs-container (make venv installs it)"))
    if module.params["keep_versions"] < 1:
        module.fail_json(msg="keep_versions must be at least 1 (the live version is always kept)")
    config = Config(max_pool_connections=max(10, module.params["concurrency"])) if Config else None
    publisher = Publisher(module, client(module, "s3", config=config))
    if module.params["state"] == "present":
        publish(module, publisher)
    else:
        rollback(module, publisher)


if __name__ == "__main__":
    main()

"""The publisher's policy: what a DAG publish or rollback writes, decided from manifests alone.

No I/O happens here (a bundle is built by the callable the caller passes). The collection module
``dag_publish`` reads the bucket, asks these functions what to write, then writes it; the format
and every name and bound it shares with the containers' sync are in ``manifest``.

A publish writes, in order: the objects the live version does not reference (each content once,
a new bundle included), the version's history manifest, the live manifest (the commit point);
then it prunes the history to the versions :func:`retained` keeps and the objects they reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import manifest as mf


def plan(current_files, desired_files):
    """Compare two ``{path: FileEntry}`` maps. Returns added, changed and removed paths (sorted)."""
    current_files = current_files or {}
    added = sorted(p for p in desired_files if p not in current_files)
    changed = sorted(
        p for p in desired_files if p in current_files and current_files[p].sha256 != desired_files[p].sha256
    )
    removed = sorted(p for p in current_files if p not in desired_files)
    return added, changed, removed


def objects_to_upload(current_files, desired_files):
    """Hashes of the desired files that the current version does not reference (each uploaded once)."""
    have = {entry.sha256 for entry in (current_files or {}).values()}
    return sorted({entry.sha256 for entry in desired_files.values()} - have)


def bundle_is_stale(bundle_files, desired_files):
    """Whether so many files differ from the bundle's that a task starting cold would download many."""
    if bundle_files is None:
        return True
    differ = sum(
        1 for path, entry in desired_files.items() if getattr(bundle_files.get(path), "sha256", None) != entry.sha256
    )
    return differ > max(mf.BUNDLE_SLACK, len(desired_files) // 10)


def bundle_base(current: mf.Manifest | None, files) -> str | None:
    """The history version whose files the publisher must read to judge the live bundle, if any.

    None when there is nothing to read: an unchanged version, no live bundle, a version too small for
    one, or a bundle built from the live version itself (whose files the caller already has).
    """
    if current is None or current.bundle is None or len(files) < mf.BUNDLE_MIN_FILES or unchanged(current, files):
        return None
    return None if current.bundle.version == current.version else current.bundle.version


@dataclass
class Publish:
    """What publishing ``desired`` over ``current`` writes."""

    current: mf.Manifest | None
    desired: mf.Manifest
    bundle: str  # new | reused | none (what the result reports)
    bundle_data: bytes = b""  # the new bundle, to upload as an object

    @property
    def unchanged(self) -> bool:
        return self.current is self.desired

    @property
    def uploads(self) -> list[str]:
        """Objects to upload: the new contents, then the new bundle."""
        if self.unchanged:
            return []
        files = objects_to_upload(self.current.files if self.current else {}, self.desired.files)
        return files + ([self.desired.bundle.sha256] if self.bundle_data else [])

    @property
    def changes(self):
        return plan(self.current.files if self.current else {}, self.desired.files)


def unchanged(current: mf.Manifest | None, files) -> bool:
    """Whether ``files`` are the live version already (nothing to validate, upload or write)."""
    return current is not None and current.version == mf.version_of(files)


def publish(
    current: mf.Manifest | None,
    files,
    *,
    assets: list[str],
    created_by: str,
    base: mf.Manifest | None,
    build_bundle: Callable[[], bytes],
    dependencies: mf.Dependencies | None = None,
) -> Publish:
    """Plan publishing ``files`` with ``dependencies`` over the live ``current``.

    ``base`` is the manifest :func:`bundle_base` named (None when it named none or it is gone);
    ``build_bundle`` makes the tar.gz of ``files``, called only when a new bundle is needed.
    The same files with other layers (a platform added) are the same version, rewritten: its
    ``previous`` and bundle stay.
    """
    if unchanged(current, files):
        if current.dependencies == dependencies:
            # The live manifest stays, and with it the bundle it has (or not).
            return Publish(current, current, "reused" if current.bundle else "none")
        desired = mf.Manifest(
            files=files,
            assets=assets,
            created_by=created_by,
            previous=current.previous,
            bundle=current.bundle,
            dependencies=dependencies,
        )
        return Publish(current, desired, "reused" if current.bundle else "none")
    desired = mf.Manifest(
        files=files,
        assets=assets,
        created_by=created_by,
        previous=current.version if current else None,
        dependencies=dependencies,
    )
    if len(files) < mf.BUNDLE_MIN_FILES:
        return Publish(current, desired, "none")
    bundle = current.bundle if current else None
    if bundle is not None:
        base_files = current.files if bundle.version == current.version else (base.files if base else None)
        if not bundle_is_stale(base_files, files):
            desired.bundle = bundle
            return Publish(current, desired, "reused")
    data = build_bundle()
    desired.bundle = mf.Bundle(mf.sha256_bytes(data), len(data), desired.version)
    return Publish(current, desired, "new", data)


def rollback_target(current: mf.Manifest, version: str) -> str | None:
    """The version a rollback to ``version`` restores (``previous``: the one the live version replaced)."""
    return current.previous if version == "previous" else version


def restored(current: mf.Manifest, target: mf.Manifest, bundle_present: bool) -> mf.Manifest:
    """The live manifest a rollback to ``target`` writes: its files and layers, and its bundle if still in the bucket.

    A bundle is an optimisation only: without it, tasks download the files one by one.
    """
    return mf.Manifest(
        files=target.files,
        assets=target.assets,
        created_at=target.created_at,
        created_by=target.created_by,
        previous=current.version,
        bundle=target.bundle if bundle_present else None,
        dependencies=target.dependencies,
    )


def prune_plan(history, live_version, keep):
    """Which history manifests to delete: the oldest beyond ``keep``, never the live one.

    ``history`` is a list of ``(version, last_modified)``.
    """
    ordered = sorted(history, key=lambda item: item[1], reverse=True)
    kept = [version for version, _modified in ordered[:keep]]
    if live_version and live_version not in kept:
        kept.append(live_version)
    return [version for version, _modified in ordered if version not in kept], kept


def history_after(history, version):
    """``history`` (``[(version, last_modified)]``) once ``version`` is written: the newest manifest."""
    others = [item for item in history if item[0] != version]
    newest = max((modified for _version, modified in others), default=None)
    return others + [(version, newest + timedelta(seconds=1) if newest else datetime.now(UTC))]


def retained(history, live: mf.Manifest, keep: int):
    """``(drop, kept)``: :func:`prune_plan`, and also kept: what ``rollback previous`` restores and the
    version the live bundle was built from (the next publish compares the bundle with its files)."""
    drop, kept = prune_plan(history, live.version, keep)
    for version in (live.previous, live.bundle.version if live.bundle else None):
        if version in drop:
            drop.remove(version)
            kept.append(version)
    return drop, kept


def referenced(manifests: Iterable[mf.Manifest]) -> set[str]:
    """Every object the ``manifests`` reference: their files' contents, their bundles and their layers."""
    found: set[str] = set()
    for manifest in manifests:
        found.update(entry.sha256 for entry in manifest.files.values())
        if manifest.bundle:
            found.add(manifest.bundle.sha256)
        if manifest.dependencies:
            found.update(layer.sha256 for layer in manifest.dependencies.layers.values())
    return found


def unreferenced(prefix: str, object_keys: Iterable[str], keep_objects: set[str]) -> list[str]:
    """The listed ``object_keys`` (full keys below ``prefix``) whose object is not in ``keep_objects``."""
    objects_prefix = mf.key(prefix, mf.OBJECTS)
    return [key for key in object_keys if key[len(objects_prefix) :] not in keep_objects]

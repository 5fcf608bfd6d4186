"""S3 -> container DAG sync: fetch the manifest, stage the version, verify it, hand it to the release.

The live DAG directory (``DAGSTER_DAGS_DIR``) is a symlink to an immutable version
directory. A sync never writes into the live version: it stages the new version beside
it (reusing unchanged files from the current one, downloading only the others), checks
every file against the manifest's SHA-256, optionally runs a validation hook (the DAG
definitions must load, where no code server checks them), and only then hands the directory to
``release.Release``, which makes it live as a whole (the symlink replaced with one ``rename``;
in the sidecar with its code server) or not at all — so the code location sees either the old
version or the new one, never a mixture. Any failure leaves the live version untouched and is
recorded in the status for the next poll and for the health details.

A version that declares extra Python dependencies (the manifest's ``dependencies``) names a layer
for each platform; the sync fetches this task's layer once (verified like every object), unpacks it
beside the versions, shared by every version with the same layer, and links it from the staged
version (``.layer``, see ``layers``). A version with no layer for this task's platform is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import layers, links
from . import manifest as mf
from .release import Refused, Release

LOG = logging.getLogger("dagster_ecs.sync")
KEEP_VERSIONS = 3
# A version refused for its content (hash mismatch, definitions that do not load) is not staged again
# at every poll: only after this many seconds (in case the objects were repaired) or when the manifest
# names another version.
REJECTED_RETRY_SECONDS = 300


class SyncError(RuntimeError):
    """A sync that could not complete; the live DAGs are unchanged."""


class Rejected(SyncError):
    """The published version itself is unusable (corrupt object, definitions that do not load)."""


@dataclass
class SyncStatus:
    version: str | None = None
    source: str = "none"  # s3 | builtin | none
    synced_at: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    files: int = 0
    downloaded: int = 0
    extra: dict = field(default_factory=dict)


def write_status(status_file: Path | None, status: SyncStatus) -> None:
    """The status as JSON (replaced with one rename: a reader never sees half of it)."""
    if status_file:
        status_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = status_file.with_name(f".{status_file.name}.tmp")
        tmp.write_text(json.dumps(asdict(status)))
        os.replace(tmp, status_file)


def use_builtin(live: Path, builtin: Path, status_file: Path | None) -> None:
    """Local fallback: serve the image's own copy of the DAGs (sync off, or nothing published yet)."""
    if links.live_version(live):
        return  # a synced version beats the image's copy
    links.point(live, builtin)
    write_status(status_file, SyncStatus(source="builtin"))


class DagSync:
    def __init__(
        self,
        s3,
        bucket: str,
        prefix: str,
        live: Path,
        status_file: Path | None = None,
        validate: Callable[[Path], None] | None = None,
        release: Release | None = None,
        workers: int = 16,
        version: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        platform: str | None = None,
    ):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.live = live
        self.versions = links.versions_dir(live)
        self.status_file = status_file
        self.validate = validate
        self.release = release or Release(live)  # the DAG link alone, when no sidecar releases with its servers
        self.workers = workers
        self.clock = clock  # when a refused version may be staged again (REJECTED_RETRY_SECONDS)
        # Whose dependency layer a version uses: this interpreter's platform (cp311-linux-aarch64, ...).
        self.platform = platform or layers.host_target().name
        # A fixed version (a run task: the version its run was launched with) instead of the live manifest.
        self.manifest_name = f"{mf.HISTORY}{version}.json" if version else mf.MANIFEST
        self.etag: str | None = None
        self._rejected: tuple[str, float] | None = None
        self.status = SyncStatus()
        self._lock = threading.Lock()  # the periodic poll and a triggered one never overlap
        current = self.current_version()
        if current:
            self.status.version, self.status.source = current, "s3"

    # --- state on disk -----------------------------------------------------------
    def current_version(self) -> str | None:
        return links.live_version(self.live)

    def _write_status(self) -> None:
        write_status(self.status_file, self.status)

    # --- one poll --------------------------------------------------------------------
    def fetch_manifest(self) -> mf.Manifest | None:
        """The published manifest, or None when it did not change since the last poll (one request)."""
        kwargs = {"Bucket": self.bucket, "Key": mf.key(self.prefix, self.manifest_name)}
        if self.etag:
            kwargs["IfNoneMatch"] = self.etag
        try:
            response = self.s3.get_object(**kwargs)
        except Exception as exc:  # botocore ClientError, connection errors
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("304", "NotModified"):
                return None
            if code in ("NoSuchKey", "404"):
                raise SyncError(f"no manifest at s3://{self.bucket}/{kwargs['Key']} (nothing published yet)") from exc
            raise SyncError(f"cannot read s3://{self.bucket}/{kwargs['Key']}: {exc}") from exc
        body = response["Body"].read()
        parsed = mf.Manifest.from_json(body)
        self.etag = response.get("ETag")
        return parsed

    def _stage(self, manifest: mf.Manifest) -> tuple[Path, int]:
        """The version's directory, every file verified and its dependency layer linked, at its final path
        (not live yet: a code server started on it keeps importing from there); and how many objects were
        downloaded. On any failure nothing of it stays."""
        layer = self._layer_of(manifest)  # before any download: a version this task cannot use is refused now
        staging = self.versions / f"{manifest.version}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            downloaded = self._fill(manifest, staging, layer)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        final = self.versions / manifest.version
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        return final, downloaded

    def _layer_of(self, manifest: mf.Manifest) -> mf.Layer | None:
        """The dependency layer of this task's platform (None: the version declares no dependencies)."""
        if manifest.dependencies is None:
            return None
        layer = manifest.dependencies.layers.get(self.platform)
        if layer is None:
            raise Rejected(
                f"version {manifest.version} has no dependency layer for {self.platform} (this task's platform); "
                f"its layers: {', '.join(sorted(manifest.dependencies.layers)) or 'none'}. Publish it again from "
                f"a publisher whose dags_layer_platforms include {self.platform}"
            )
        return layer

    def _fill(self, manifest: mf.Manifest, staging: Path, layer: mf.Layer | None) -> int:
        """Stage the manifest's files and link the version's layer; returns how many objects were downloaded."""
        current = self.current_version()
        current_dir = self.versions / current if current else None
        current_files = mf.scan(current_dir) if current_dir and current_dir.is_dir() else {}
        wanted: dict[str, list[Path]] = {}
        for path, entry in manifest.files.items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            local = current_files.get(path)
            if local and local.sha256 == entry.sha256:
                # Versions are immutable: the unchanged file is shared, not copied (hashed by the scan above).
                try:
                    os.link(current_dir / path, target)
                except OSError:
                    shutil.copy2(current_dir / path, target)
            else:
                wanted.setdefault(entry.sha256, []).append(target)
        requests = 0
        if manifest.bundle and len(wanted) >= mf.BUNDLE_MIN_FILES:
            wanted, requests = self._from_bundle(manifest, staging, wanted), 1
        layer_dir = self._layer_dir(layer) if layer is not None else None
        fetch = layer_dir is not None and not layer_dir.is_dir()  # else unpacked already (an earlier version)
        started = time.monotonic()
        # Only what changed is downloaded, in parallel (the layer too); each object is verified against its hash.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending = pool.submit(self._download, layer.sha256) if fetch else None
            for sha256, data in zip(wanted, pool.map(self._download, wanted), strict=True):
                for target in wanted[sha256]:
                    target.write_bytes(data)
            if pending is not None:
                try:
                    layers.unpack(pending.result(), layer_dir)
                except layers.LayerError as exc:
                    raise Rejected(f"version {manifest.version}: dependency layer {layer.sha256[:16]}: {exc}") from exc
        if layer is not None:
            LOG.info(
                "DAG dependency layer %s for %s %s (%d packages, %d bytes) in %.2fs",
                layer.sha256[:16],
                self.platform,
                "fetched and unpacked" if fetch else "reused",
                len(layer.packages),
                layer.size,
                time.monotonic() - started,
            )
        layers.attach(staging, layer_dir)
        return requests + len(wanted) + (1 if fetch else 0)

    def _layer_dir(self, layer: mf.Layer) -> Path:
        """Where ``layer`` is unpacked, shared by every version that uses it (an absolute path: the link's target)."""
        root = layers.layers_dir(self.live).absolute()
        root.mkdir(parents=True, exist_ok=True)
        return root / layer.sha256[:16]

    def _from_bundle(self, manifest: mf.Manifest, staging: Path, wanted: dict[str, list[Path]]):
        """Fill ``wanted`` from the manifest's bundle (one request); returns what is still missing."""
        bundle = manifest.bundle
        try:
            data = self._download(bundle.sha256)
        except SyncError as exc:  # a bundle is an optimisation: fall back to the files one by one
            LOG.warning("DAG bundle unusable, downloading files one by one: %s", exc)
            return wanted
        paths = {t.relative_to(staging).as_posix(): sha for sha, targets in wanted.items() for t in targets}
        written = mf.extract_bundle(data, staging, set(paths))
        missing: dict[str, list[Path]] = {}
        for path, sha256 in paths.items():
            target = staging / path
            if path in written and mf.sha256_file(target) == sha256:
                continue
            if target.exists():
                target.unlink()  # from an older version than the manifest's: downloaded below
            missing.setdefault(sha256, []).append(target)
        return missing

    def _download(self, sha256: str) -> bytes:
        object_key = mf.key(self.prefix, mf.OBJECTS + sha256)
        try:
            data = self.s3.get_object(Bucket=self.bucket, Key=object_key)["Body"].read()
        except Exception as exc:
            raise SyncError(f"cannot download s3://{self.bucket}/{object_key}: {exc}") from exc
        if mf.sha256_bytes(data) != sha256:
            raise Rejected(f"s3://{self.bucket}/{object_key} is corrupt (sha256 mismatch)")
        return data

    def poll(self) -> bool:
        """One poll. True when a new version went live. Never raises: failures are recorded."""
        with self._lock:
            return self._poll()

    def _poll(self) -> bool:
        self.status.last_attempt = time.time()
        manifest = None
        try:
            manifest = self.fetch_manifest()
            if manifest is None or manifest.version == self.current_version():
                if self.status.last_error:
                    LOG.info("DAG sync recovered after %d failed polls", self.status.consecutive_failures)
                self.status.last_error, self.status.consecutive_failures = None, 0
                self._write_status()
                return False
            if (
                self._rejected
                and self._rejected[0] == manifest.version
                and self.clock() - self._rejected[1] < REJECTED_RETRY_SECONDS
            ):
                raise Rejected(self.status.last_error or f"version {manifest.version} was refused")
            started = time.monotonic()
            final, downloaded = self._stage(manifest)
            try:
                self._verify(manifest.version, final)
                self.release.go_live(manifest.version, final)
            except Refused as exc:  # nothing of it is live: it goes, and is not staged again for a while
                shutil.rmtree(final, ignore_errors=True)
                raise Rejected(str(exc)) from exc
            self._rejected = None
            self._prune(keep=manifest.version)
            self.status = SyncStatus(
                version=manifest.version,
                source="s3",
                synced_at=time.time(),
                last_attempt=self.status.last_attempt,
                files=len(manifest.files),
                downloaded=downloaded,
            )
            LOG.info(
                "DAG version %s live (%d files, %d downloaded) in %.2fs",
                manifest.version,
                len(manifest.files),
                downloaded,
                time.monotonic() - started,
            )
            self._write_status()
            return True
        except Exception as exc:  # noqa: BLE001 - every failure keeps the live DAGs and is retried
            self.etag = None  # re-read the manifest next time
            if isinstance(exc, Rejected) and manifest is not None:
                known = self._rejected and self._rejected[0] == manifest.version
                if not known or self.clock() - self._rejected[1] >= REJECTED_RETRY_SECONDS:
                    self._rejected = (manifest.version, self.clock())
            repeated = str(exc) == self.status.last_error
            self.status.last_error = str(exc)
            self.status.consecutive_failures += 1
            # The same failure every poll is logged once, then every 30th time, not every 10 seconds.
            if not repeated or self.status.consecutive_failures % 30 == 0:
                LOG.error(
                    "DAG sync failed%s, live DAGs unchanged (%s): %s",
                    f" ({self.status.consecutive_failures} times)" if repeated else "",
                    self.status.version or self.status.source,
                    exc,
                )
            self._write_status()
            return False

    def _verify(self, version: str, directory: Path) -> None:
        """The validation hook (the definitions load in a separate interpreter), where one is set."""
        if self.validate:
            try:
                self.validate(directory)
            except Exception as exc:  # noqa: BLE001 - whatever the hook raises refuses the version
                raise Refused.not_loading(version, exc) from exc

    def _prune(self, keep: str) -> None:
        """Keep the newest KEEP_VERSIONS version directories (and ``keep``), then the layers they use."""
        versions = sorted(
            (
                p
                for p in self.versions.iterdir()
                if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(".partial")
            ),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in versions[KEEP_VERSIONS:]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        removed = layers.prune(self.live, [p for p in versions if p.is_dir()])
        if removed:
            LOG.info("removed %d dependency layer(s) no kept DAG version uses: %s", len(removed), ", ".join(removed))

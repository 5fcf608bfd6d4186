"""The DAG manifest: the one definition of what a published DAG version is.

Layout in the bucket, under the DAG prefix (``dags/`` by default)::

    dags/manifest.json            the live version: the commit point, written last
    dags/manifests/<version>.json every published version (rollback = point manifest.json at one)
    dags/objects/<sha256>         file contents, content-addressed and immutable; also bundles and layers

A **bundle** is one deterministic tar.gz of a version's files, also content-addressed. A task
that starts with no DAGs (or far behind) fetches the manifest's bundle in one request instead
of a request per file, then downloads individually only the files that differ from it. The
publisher keeps reusing a bundle while few files differ from it, so a one-file change is still
one upload.

A **layer** is a version's extra Python dependencies (the DAG directory's ``requirements.txt``,
resolved against the image's pins) installed for one platform and packed as one deterministic
tar.gz, also content-addressed (``dagster_ecs_container.layers`` builds it). The manifest's
``dependencies`` name the declared set (``source``: a hash of the requirements, the image's pins
and the layer format) and one layer per platform (``cp311-linux-aarch64``, ...); versions that
declare the same set share the same layers. A task uses the layer of its own platform.

A publish uploads only objects the bucket does not hold yet, then the manifest. A sync
downloads only files whose hash it does not have, verifies every hash and swaps the
directory atomically. The publisher (collection module ``dag_publish``) and the container
(``dagster_ecs_container.sync``) both use this module: every name, key and bound the two
sides share is defined here, once. What a publish writes (the publisher's policy) is
decided in ``dagster_ecs_container.plan``.
"""

from __future__ import annotations

import getpass
import gzip
import hashlib
import io
import json
import posixpath
import re
import socket
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FORMAT = 1
# The prefix both sides use unless told otherwise (dag_publish's `prefix`, the role's `dags_prefix`,
# the containers' DAGSTER_DAGS_PREFIX; tests/unit/test_dag_plan.py checks they agree).
DEFAULT_PREFIX = "dags/"
MANIFEST = "manifest.json"
HISTORY = "manifests/"
OBJECTS = "objects/"
# A version of at least this many files gets a bundle (the publisher), and a sync with at least this
# many files to download fetches the bundle first (one request) instead of the files one by one.
BUNDLE_MIN_FILES = 8
# The publisher builds a new bundle when more than max(BUNDLE_SLACK, 10 %) of a version's files differ
# from the live bundle's (a task starting cold then downloads at most that many files one by one).
BUNDLE_SLACK = 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A layer's platform name: interpreter, OS, machine (dagster_ecs_container.layers.Target.name).
_PLATFORM = re.compile(r"^cp3[0-9]+-[a-z0-9]+-[a-z0-9_]+$")
# Never published: caches, VCS and editor files, tests of the DAGs themselves.
IGNORED_DIRS = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"}
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


class ManifestError(ValueError):
    """A manifest that is missing, malformed or inconsistent."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


def _check_path(path: str) -> str:
    normal = posixpath.normpath(path)
    if path != normal or normal.startswith(("/", "../")) or normal in (".", "..") or "\\" in path:
        raise ManifestError(f"unsafe path in manifest: {path!r}")
    return path


def scan(directory: Path) -> dict[str, FileEntry]:
    """Every publishable file below ``directory`` (relative POSIX path -> hash and size)."""
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part in IGNORED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if not path.is_file() or path.name.endswith(IGNORED_SUFFIXES):
            continue
        files[relative.as_posix()] = FileEntry(sha256_file(path), path.stat().st_size)
    return files


def version_of(files: dict[str, FileEntry]) -> str:
    """Content version: the same files give the same version, whoever publishes them."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{files[path].sha256}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Bundle:
    """A tar.gz of the files of ``version`` (maybe an earlier version than the manifest's)."""

    sha256: str
    size: int
    version: str


def make_bundle(directory: Path, files: dict[str, FileEntry]) -> bytes:
    """The files as a tar.gz that depends only on their paths and contents (same files, same hash)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = (directory / path).read_bytes()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def extract_bundle(data: bytes, target: Path, wanted: set[str]) -> set[str]:
    """Write the bundle's regular files whose path is in ``wanted`` below ``target``; return those written.

    Nothing outside ``wanted`` (paths already checked by the manifest) is ever written, so a bundle
    cannot place a file anywhere else. The caller verifies every file's hash.
    """
    written = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or member.name not in wanted:
                continue
            source = tar.extractfile(member)
            destination = target / member.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read())
            written.add(member.name)
    return written


@dataclass(frozen=True)
class Layer:
    """The dependencies of a version installed for one platform: a tar.gz of a site-packages directory."""

    sha256: str
    size: int
    packages: tuple[str, ...] = ()  # name==version, sorted: what the layer installs (the image's excluded)


@dataclass(frozen=True)
class Dependencies:
    """A version's declared extra dependencies and their layer for each platform."""

    source: str  # hash of the requirements file, the image's pins and the layer format: same set, same layers
    requirements: tuple[str, ...]  # the declared requirement lines, as written
    layers: dict[str, Layer] = field(default_factory=dict)  # platform name (layers.Target.name) -> layer

    def packages(self) -> tuple[str, ...]:
        """Every package any layer installs (for diffs and reports)."""
        return tuple(sorted({package for layer in self.layers.values() for package in layer.packages}))

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "requirements": list(self.requirements),
            "layers": {
                name: {"sha256": layer.sha256, "size": layer.size, "packages": list(layer.packages)}
                for name, layer in sorted(self.layers.items())
            },
        }

    @classmethod
    def from_dict(cls, data) -> Dependencies:
        if not isinstance(data, dict) or not _SHA256.match(str(data.get("source", ""))):
            raise ManifestError("bad dependencies entry in manifest")
        raw = data.get("layers")
        if not isinstance(raw, dict) or not raw:
            raise ManifestError("the manifest's dependencies list no layer")
        layers = {}
        for name, entry in raw.items():
            if not _PLATFORM.match(str(name)) or not isinstance(entry, dict):
                raise ManifestError(f"bad layer platform {name!r} in manifest")
            if not _SHA256.match(str(entry.get("sha256", ""))):
                raise ManifestError(f"bad layer entry for {name!r} in manifest")
            packages = entry.get("packages") or []
            if not isinstance(packages, list):
                raise ManifestError(f"bad package list of layer {name!r} in manifest")
            layers[name] = Layer(entry["sha256"], int(entry.get("size", 0)), tuple(str(p) for p in packages))
        requirements = data.get("requirements") or []
        if not isinstance(requirements, list):
            raise ManifestError("bad requirements list in manifest")
        return cls(data["source"], tuple(str(r) for r in requirements), layers)


@dataclass
class Manifest:
    files: dict[str, FileEntry]
    version: str = ""
    created_at: str = ""
    created_by: str = ""
    previous: str | None = None
    assets: list[str] = field(default_factory=list)
    bundle: Bundle | None = None
    dependencies: Dependencies | None = None

    def __post_init__(self):
        self.version = self.version or version_of(self.files)
        if not self.created_at:
            self.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if not self.created_by:
            self.created_by = f"{getpass.getuser()}@{socket.gethostname()}"

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "previous": self.previous,
            "assets": self.assets,
            "files": {p: {"sha256": e.sha256, "size": e.size} for p, e in sorted(self.files.items())},
        }
        if self.bundle:
            data["bundle"] = {"sha256": self.bundle.sha256, "size": self.bundle.size, "version": self.bundle.version}
        if self.dependencies:
            data["dependencies"] = self.dependencies.to_dict()
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(
                f"unsupported manifest format {data.get('format') if isinstance(data, dict) else data!r}"
            )
        raw = data.get("files")
        if not isinstance(raw, dict) or not raw:
            raise ManifestError("manifest lists no files")
        files = {}
        for path, entry in raw.items():
            if not isinstance(entry, dict) or not _SHA256.match(str(entry.get("sha256", ""))):
                raise ManifestError(f"bad entry for {path!r} in manifest")
            files[_check_path(path)] = FileEntry(entry["sha256"], int(entry.get("size", 0)))
        bundle = data.get("bundle")
        if bundle is not None:
            if not isinstance(bundle, dict) or not _SHA256.match(str(bundle.get("sha256", ""))):
                raise ManifestError("bad bundle entry in manifest")
            bundle = Bundle(bundle["sha256"], int(bundle.get("size", 0)), str(bundle.get("version") or ""))
        dependencies = data.get("dependencies")
        if dependencies is not None:
            dependencies = Dependencies.from_dict(dependencies)
        manifest = cls(
            files=files,
            version=str(data.get("version") or ""),
            created_at=str(data.get("created_at") or ""),
            created_by=str(data.get("created_by") or ""),
            previous=data.get("previous"),
            assets=list(data.get("assets") or []),
            bundle=bundle,
            dependencies=dependencies,
        )
        if manifest.version != version_of(files):
            raise ManifestError(f"manifest version {manifest.version} does not match its files")
        return manifest


def key(prefix: str, name: str) -> str:
    """S3 key of ``name`` (``manifest.json``, ``objects/<sha>``, ...) under the DAG prefix."""
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


def history_name(version: str) -> str:
    """Name (below the DAG prefix) of the history manifest of ``version``."""
    return f"{HISTORY}{version}.json"


def history_version(name: str) -> str | None:
    """The version of a name below ``HISTORY`` (a listing's key without the prefix), None for anything else."""
    if name.endswith(".json") and "/" not in name:
        return name[: -len(".json")]
    return None


def object_name(sha256: str) -> str:
    """Name (below the DAG prefix) of the object holding the content ``sha256`` (a file or a bundle)."""
    return OBJECTS + sha256

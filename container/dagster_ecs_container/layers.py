"""DAG dependency layers: the DAGs' own Python packages, without an image rebuild.

The DAG directory declares extra dependencies in ``requirements.txt`` (one requirement per line, name
and version specifiers only; a ``pyproject.toml`` that declares dependencies is refused, so there is
one place). The publisher (``dag_publish``) resolves them with uv against the image's pins
(``image-pins.txt`` in this package: every distribution the image installs, at its version), so
nothing the image ships can be changed this way, then installs the resolved set, minus what the
image already has, for each platform the tasks run on (binary wheels only: a task never compiles
and never reaches a package index) and packs it as one deterministic tar.gz, a **layer**. The layer
is stored content-addressed in the DAG bucket and named by the manifest (``manifest.Dependencies``).

In a task the sync fetches the layer of the task's own platform once, verifies its hash, unpacks it
beside the DAG versions (shared by every version with the same layer) and links it from the version
directory (``.layer``); the code server and the run worker get it on ``PYTHONPATH``. A layer whose
packages do not import refuses the version like any other definitions error.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import manifest as mf

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
# Bumped when the layer's layout changes: part of every layer's source key.
FORMAT = 1
LINK = ".layer"  # in a version directory: the unpacked layer that version uses
# The tasks' platforms (ecs_cpu_architecture) and the manylinux level of the image (Debian bookworm, glibc 2.36).
ARCHITECTURES = {"ARM64": "aarch64", "X86_64": "x86_64"}
MANYLINUX = "manylinux_2_28"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


class LayerError(RuntimeError):
    """The declared dependencies cannot be resolved, built or used; the message names what and why."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Target:
    """A platform a layer is built for: CPython version, OS and machine."""

    python: str  # "3.11"
    system: str  # "linux"
    machine: str  # "aarch64" | "x86_64"
    native: bool = False  # the publisher's own interpreter (uv picks its platform itself)

    @property
    def name(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.system}-{self.machine}"

    def uv_args(self) -> list[str]:
        args = ["--python-version", self.python]
        if not self.native:
            args += ["--python-platform", f"{self.machine}-{MANYLINUX}"]
        return args


def target_from(spec: str, python: str) -> Target:
    """A platform as the publisher is told it: ``linux/arm64``, ``linux/amd64`` (the tasks', with the
    image's CPython ``python``) or ``host`` (this interpreter's: the offline profile's tasks run here)."""
    if spec == "host":
        return host_target()
    system, _, machine = spec.partition("/")
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    if system != "linux" or machine not in ARCHITECTURES.values():
        raise LayerError(f"unknown layer platform {spec!r}; expected linux/arm64, linux/amd64 or host")
    return Target(python, system, machine)


def task_target(architecture: str, python: str) -> Target:
    """The tasks' platform: ``ecs_cpu_architecture`` (ARM64, X86_64) and the image's CPython version."""
    try:
        return Target(python, "linux", ARCHITECTURES[architecture.upper()])
    except KeyError:
        raise LayerError(
            f"unknown CPU architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}"
        ) from None


def host_target() -> Target:
    """The platform of this interpreter (the sidecar's, or the publisher's for the validation)."""
    machine = platform.machine().lower()
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    return Target(f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform, machine, native=True)


# --- what the DAG directory declares ---------------------------------------------------------------
def declared(directory: Path) -> tuple[str, ...]:
    """The requirement lines of ``directory/requirements.txt`` (empty: nothing declared)."""
    pyproject = directory / PYPROJECT
    if pyproject.is_file() and _declares_dependencies(pyproject.read_text(errors="replace")):
        raise LayerError(
            f"{pyproject} declares dependencies: the DAGs' dependencies are declared in {REQUIREMENTS} "
            f"only (one place); move them there and remove them from {PYPROJECT}"
        )
    path = directory / REQUIREMENTS
    if not path.is_file():
        return ()
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{REQUIREMENTS}:{number}: {line!r}"
        if line.startswith("-"):
            raise LayerError(
                f"{where}: options are not read here; the package index is set in the inventory "
                "(dags_index_url, dags_find_links)"
            )
        if "://" in line or " @ " in line or line.startswith((".", "/")) or not _NAME.match(line):
            raise LayerError(f"{where}: only a package name with version specifiers (and markers) is accepted")
        lines.append(line)
    return tuple(lines)


def _declares_dependencies(text: str) -> bool:
    import tomllib

    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return False
    return bool(project.get("dependencies")) or bool(project.get("optional-dependencies"))


def image_pins_text() -> str:
    return resources.files(__package__).joinpath("image-pins.txt").read_text()


def image_pins(text: str | None = None) -> dict[str, str]:
    """``{canonical name: version}`` of every distribution the image installs."""
    pins = {}
    for line in (image_pins_text() if text is None else text).splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def source_key(requirements: tuple[str, ...], pins_text: str | None = None) -> str:
    """Same declared set, same image pins, same layer format: same layers (nothing to resolve or build)."""
    digest = hashlib.sha256(f"dagster-ecs layer format {FORMAT}\n".encode())
    digest.update("\n".join(requirements).encode() + b"\n--\n")
    digest.update((image_pins_text() if pins_text is None else pins_text).encode())
    return digest.hexdigest()


def check_pins(requirements: tuple[str, ...], pins: dict[str, str]) -> None:
    """A requirement on a package the image ships must admit the image's version (fails naming both)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise LayerError(f"{REQUIREMENTS}: {line!r} is not a valid requirement: {exc}") from exc
        pinned = pins.get(canonical(requirement.name))
        if pinned is not None and not requirement.specifier.contains(pinned, prereleases=True):
            raise LayerError(
                f"{REQUIREMENTS}: {line!r} conflicts with the image's pin {requirement.name}=={pinned}. The image's "
                "own packages cannot change in a DAG deploy: change them in container/pyproject.toml and roll out "
                "a new image (--tags image,ecs)"
            )


# --- resolve and build (the publisher) -------------------------------------------------------------
@dataclass(frozen=True)
class Index:
    """Where uv finds packages. The index URL (which may carry credentials) goes through uv's environment,
    not its arguments; ``find_links`` are local directories or plain URLs."""

    url: str | None = None  # None: uv's default (PyPI)
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    timeout: float = 600.0

    def args(self) -> list[str]:
        links = [arg for link in self.find_links for arg in ("--find-links", link)]
        return links + (["--no-index"] if self.no_index else [])

    def env(self, cache: Path | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
        env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
        if self.url:
            env["UV_DEFAULT_INDEX"] = self.url
        if cache is None:
            env["UV_NO_CACHE"] = "1"
        else:
            env["UV_CACHE_DIR"] = str(cache)
        return env


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise LayerError("uv is not installed in the publisher's Python (make venv installs the pinned uv)")


def _uv(args: list[str], index: Index, cache: Path | None, what: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - our own command line
            [uv_binary(), *args, *index.args()],
            capture_output=True,
            text=True,
            env=index.env(cache),
            timeout=index.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LayerError(f"{what}: uv took more than {index.timeout:g}s (dags_layer_timeout)") from None
    except OSError as exc:
        raise LayerError(f"{what}: cannot run uv: {exc}") from exc
    if done.returncode != 0:
        raise LayerError(f"{what}: {_uv_reason(done.stderr, index)}")
    return done.stdout


def _uv_reason(stderr: str, index: Index) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith("hint:"))
    hints = " ".join(line for line in lines if line.startswith("hint:"))
    for secret in filter(None, [index.url]):
        text, hints = text.replace(secret, "<index>"), hints.replace(secret, "<index>")
    return (text + (" " + hints if hints else "")).strip() or "uv failed with no message"


def resolve(requirements: tuple[str, ...], target: Target, index: Index, cache: Path | None = None) -> list[str]:
    """``name==version`` of every package the requirements need on ``target``, the image's pins respected."""
    with tempfile.TemporaryDirectory(prefix="dagster-ecs-resolve-") as work:
        work = Path(work)
        (work / "requirements.in").write_text("\n".join(requirements) + "\n")
        (work / "image-pins.txt").write_text(image_pins_text())
        out = _uv(
            [
                "pip",
                "compile",
                "--quiet",
                "--no-header",
                "--no-annotate",
                "--no-strip-markers",
                "--only-binary",
                ":all:",
                *target.uv_args(),
                "--constraint",
                str(work / "image-pins.txt"),
                str(work / "requirements.in"),
            ],
            index,
            cache,
            f"the DAG dependencies cannot be resolved for {target.name}",
        )
    return sorted(
        (line.split(";", 1)[0].strip() for line in out.splitlines() if "==" in line and not line.startswith("#")),
        key=str.lower,
    )


def installable(resolved: list[str], pins: dict[str, str]) -> list[str]:
    """The resolved packages the image does not already have (same version: the pins constrained it)."""
    return [line for line in resolved if canonical(line.split("==", 1)[0]) not in pins]


@dataclass(frozen=True)
class Built:
    target: Target
    packages: tuple[str, ...]
    data: bytes  # the layer's tar.gz (of nothing, when the image has every resolved package)
    seconds: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Planned:
    """The layers a publish needs: the manifest's ``dependencies``, and what this run built for them."""

    dependencies: mf.Dependencies | None
    built: dict[str, Built]  # platform name -> layer built now (its object may already be in the bucket)


def plan_dependencies(
    requirements: tuple[str, ...],
    current: mf.Dependencies | None,
    targets: list[Target],
    index: Index,
    cache: Path | None = None,
) -> Planned:
    """Reuse the live version's layers for the same declared set and image pins; build the others."""
    if not requirements:
        return Planned(None, {})
    source = source_key(requirements)
    have = current.layers if current is not None and current.source == source else {}
    layers, built = {}, {}
    for target in targets:
        if target.name in have:
            layers[target.name] = have[target.name]
            continue
        if target.name not in built:
            built[target.name] = build(requirements, target, index, cache)
        layers[target.name] = mf.Layer(
            built[target.name].sha256, len(built[target.name].data), built[target.name].packages
        )
    return Planned(mf.Dependencies(source, requirements, layers), built)


def validation_site(
    requirements: tuple[str, ...], planned: Planned, index: Index, root: Path, cache: Path | None = None
) -> Path:
    """An unpacked layer for this interpreter, to load the definitions with before anything is uploaded.

    Kept below ``root`` by source key and platform, so a code-only change reuses it (the caller passes a
    temporary ``root`` in check mode). The tasks' layer when this machine is their platform, else one
    built for it here (``cache``: uv's cache, None for none).
    """
    host = host_target()
    site = Path(root) / f"{planned.dependencies.source[:16]}-{host.name}"
    if site.is_dir():
        return site
    built = planned.built.get(host.name) or build(requirements, host, index, cache)
    site.parent.mkdir(parents=True, exist_ok=True)
    return unpack(built.data, site)


def build(
    requirements: tuple[str, ...],
    target: Target,
    index: Index,
    cache: Path | None = None,
    image_modules: set[str] | None = None,
) -> Built:
    """Resolve, install into a fresh directory for ``target`` (wheels only, no dependencies pulled in
    besides the resolved set), refuse modules that would shadow the image's or the standard library's,
    pack deterministically."""
    started = time.monotonic()
    pins = image_pins()
    check_pins(requirements, pins)
    packages = installable(resolve(requirements, target, index, cache), pins)
    with tempfile.TemporaryDirectory(prefix="dagster-ecs-layer-") as work:
        work = Path(work)
        (work / "resolved.txt").write_text("\n".join(packages) + "\n")
        site = work / "site"
        site.mkdir()
        if packages:  # else: all of it is in the image already, the layer is empty
            _uv(
                [
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "--link-mode",
                    "copy",
                    *target.uv_args(),
                    "--target",
                    str(site),
                    "--requirement",
                    str(work / "resolved.txt"),
                ],
                index,
                cache,
                f"the DAG dependencies cannot be installed for {target.name}",
            )
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts of the build machine: not used
        for bookkeeping in site.glob("*.dist-info/uv_cache.json"):
            _drop_from_dist_info(bookkeeping)
        shadowed = sorted(top_level(site) & (image_modules if image_modules is not None else protected_modules()))
        if shadowed:
            raise LayerError(
                f"the DAG dependencies for {target.name} would replace modules of the image or of Python itself: "
                f"{', '.join(shadowed)}; change the image's packages through container/pyproject.toml instead"
            )
        data = pack(site)
    return Built(target, tuple(packages), data, time.monotonic() - started)


def _drop_from_dist_info(path: Path) -> None:
    """Remove ``path`` and its line in the distribution's RECORD. For uv_cache.json: uv's cache bookkeeping (a
    local wheel's mtime), not content; kept, the same requirements would give a new layer on every machine."""
    record = path.parent / "RECORD"
    entry = f"{path.parent.name}/{path.name},"
    if record.is_file():
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith(entry)))
    path.unlink()


def top_level(site: Path) -> set[str]:
    """Importable top-level names a site-packages directory provides."""
    names = set()
    for entry in site.iterdir():
        if entry.name.endswith((".dist-info", ".data")) or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            names.add(entry.name)
        elif entry.suffix in (".py", ".so", ".pyd") or ".cpython-" in entry.name:
            names.add(entry.name.split(".", 1)[0])
    return names


def protected_modules() -> set[str]:
    """Top-level modules of the standard library and of every distribution the image installs."""
    from importlib.metadata import packages_distributions

    pins = image_pins()
    image = {
        module
        for module, distributions in packages_distributions().items()
        if any(canonical(name) in pins for name in distributions)
    }
    return image | set(sys.stdlib_module_names)


def pack(directory: Path) -> bytes:
    """``directory`` as a tar.gz that depends only on its paths, contents and executable bits."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory).as_posix()
            if "__pycache__" in path.relative_to(directory).parts or path.is_symlink():
                continue
            info = tarfile.TarInfo(relative)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


# --- use (the task) --------------------------------------------------------------------------------
def layers_dir(live: Path) -> Path:
    """Where a task unpacks layers: beside the DAG versions (``.<name>.layers/<sha256[:16]>``)."""
    return live.parent / f".{live.name}.layers"


def unpack(data: bytes, target: Path) -> Path:
    """Unpack a verified layer at ``target`` (once: an existing ``target`` is kept). Only regular files and
    directories below ``target`` are written (tarfile's ``data`` filter refuses the rest)."""
    if target.is_dir():
        return target
    if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4: no safe extraction, so none at all
        raise LayerError("this Python cannot unpack layers safely (tarfile.data_filter needs 3.11.4 or newer)")
    staging = target.with_name(f"{target.name}.{os.getpid()}.{time.monotonic_ns()}.partial")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")  # noqa: S202 - the data filter refuses links and escapes
        staging.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process unpacked the same layer first: keep theirs
                raise
    except (OSError, tarfile.TarError) as exc:
        raise LayerError(f"the layer cannot be unpacked: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def attach(version_dir: Path, layer: Path | None) -> None:
    """Link ``version_dir`` to the unpacked layer it uses (None: it uses none)."""
    link = version_dir / LINK
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    if layer is not None:
        os.symlink(layer, link)


def with_site(site: Path | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: this process's) with ``site`` first on PYTHONPATH."""
    env = dict(os.environ if environ is None else environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return env


def site(version_dir: Path) -> Path | None:
    """The unpacked layer ``version_dir`` uses (None: it uses none)."""
    link = Path(version_dir) / LINK
    return link.resolve() if link.is_dir() else None


def pythonpath(version_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that imports ``version_dir``: its layer, if any, on PYTHONPATH."""
    return with_site(site(version_dir), environ)


def prune(live: Path, versions: list[Path]) -> list[str]:
    """Remove unpacked layers that no version in ``versions`` links to (a layer in use stays)."""
    root = layers_dir(live)
    if not root.is_dir():
        return []
    used = {(v / LINK).resolve() for v in versions if (v / LINK).is_symlink()}
    removed = []
    for entry in root.iterdir():
        if entry.name.endswith(".partial") or entry.resolve() in used:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed

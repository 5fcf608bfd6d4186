"""A version's dependency layer in the task: fetched once, verified, unpacked, linked, on PYTHONPATH, pruned.

The sync runs against a fake bucket with the DAG link alone as its release (no code server); the code
server's side is in test_codeservers.py (a real server importing a layer's module).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from dagster_ecs_container import codeservers, entrypoint, inspect, layers, links
from dagster_ecs_container import manifest as mf
from dagster_ecs_container import sync as sync_module
from dagster_ecs_container.sync import DagSync
from support.fake_s3 import S3 as FakeS3

PLATFORM = "cp311-linux-x86_64"
OTHER = "cp311-linux-aarch64"
SOURCE = "ab" * 32
PREFIX = "dags/"


class S3(FakeS3):
    """One DAG prefix of a bucket; every GET is counted by key."""

    def count(self, sha256: str) -> int:
        return self.gets.count(mf.key(PREFIX, mf.OBJECTS + sha256))


def make_layer(tmp_path, name: str, module: str = "extra_mod") -> tuple[mf.Layer, bytes]:
    """A layer providing ``module`` (its VALUE is ``name``)."""
    site = tmp_path / "sites" / name
    site.mkdir(parents=True)
    (site / f"{module}.py").write_text(f"VALUE = {name!r}\n")
    data = layers.pack(site)
    return mf.Layer(mf.sha256_bytes(data), len(data), (f"{module}==1.0",)), data


def publish(s3, tmp_path, name: str, layer: tuple[mf.Layer, bytes] | None = None, platform=PLATFORM) -> str:
    """A version whose definitions.py says ``name``, with ``layer`` for ``platform``; returns its version."""
    directory = tmp_path / "src" / name
    directory.mkdir(parents=True)
    (directory / "definitions.py").write_text(f"import extra_mod\nNAME = {name!r}\n")
    files = mf.scan(directory)
    for path, entry in files.items():
        s3.objects[mf.key(PREFIX, mf.OBJECTS + entry.sha256)] = (directory / path).read_bytes()
    dependencies = None
    if layer is not None:
        entry, data = layer
        s3.objects[mf.key(PREFIX, mf.OBJECTS + entry.sha256)] = data
        dependencies = mf.Dependencies(SOURCE, ("extra-mod==1.0",), {platform: entry})
    manifest = mf.Manifest(files=files, dependencies=dependencies)
    s3.objects[mf.key(PREFIX, mf.MANIFEST)] = manifest.to_json().encode()
    return manifest.version


@pytest.fixture
def task(tmp_path):
    s3, live = S3(), tmp_path / "task" / "dags"
    sync = DagSync(s3, "bucket", PREFIX, live, status_file=tmp_path / "status.json", platform=PLATFORM)
    return s3, live, sync


def test_a_version_with_a_layer_gets_it_linked_and_on_its_pythonpath(task, tmp_path):
    s3, live, sync = task
    layer = make_layer(tmp_path, "one")
    version = publish(s3, tmp_path, "a", layer)
    assert sync.poll() is True, sync.status.last_error
    assert sync.current_version() == version
    unpacked = layers.layers_dir(live) / layer[0].sha256[:16]
    assert (unpacked / "extra_mod.py").is_file()
    version_dir = sync.versions / version
    assert (version_dir / layers.LINK).is_symlink() and (version_dir / layers.LINK).resolve() == unpacked.resolve()
    path = layers.pythonpath(version_dir, {"PYTHONPATH": "/elsewhere"})["PYTHONPATH"]
    assert path.split(os.pathsep) == [str(unpacked.resolve()), "/elsewhere"]
    assert sync.status.downloaded == 2  # definitions.py and the layer
    # what the code server and the run worker get: the layer's module imports
    done = subprocess.run(
        [sys.executable, "-c", "import extra_mod; print(extra_mod.VALUE)"],
        env=layers.pythonpath(live.resolve()),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "one"


def test_a_second_version_with_the_same_layer_reuses_it(task, tmp_path, caplog):
    s3, live, sync = task
    layer = make_layer(tmp_path, "one")
    publish(s3, tmp_path, "a", layer)
    assert sync.poll() is True
    assert s3.count(layer[0].sha256) == 1
    second = publish(s3, tmp_path, "b", layer)
    caplog.set_level("INFO", logger="dagster_ecs.sync")
    assert sync.poll() is True, sync.status.last_error
    assert s3.count(layer[0].sha256) == 1, "the layer was downloaded again"
    assert sync.status.downloaded == 1  # definitions.py only
    assert (sync.versions / second / layers.LINK).resolve() == (
        layers.layers_dir(live) / layer[0].sha256[:16]
    ).resolve()
    assert "reused" in caplog.text
    assert [p.name for p in layers.layers_dir(live).iterdir()] == [layer[0].sha256[:16]]


def test_a_corrupt_layer_refuses_the_version_and_leaves_the_live_one(task, tmp_path):
    s3, live, sync = task
    first = publish(s3, tmp_path, "a")
    assert sync.poll() is True
    layer = make_layer(tmp_path, "one")
    broken = publish(s3, tmp_path, "b", layer)
    s3.objects[mf.key(PREFIX, mf.OBJECTS + layer[0].sha256)] = b"tampered"
    assert sync.poll() is False
    assert "corrupt" in sync.status.last_error and layer[0].sha256 in sync.status.last_error
    assert sync.current_version() == first and links.read(live) == str(sync.versions / first)
    assert not (sync.versions / broken).exists() and not list(sync.versions.glob("*.partial"))
    assert not list(layers.layers_dir(live).iterdir())


def test_a_layer_that_does_not_unpack_refuses_the_version(task, tmp_path):
    s3, live, sync = task
    first = publish(s3, tmp_path, "a")
    assert sync.poll() is True
    data = b"not a tar.gz"  # its hash matches: published so, not damaged on the way
    broken = publish(s3, tmp_path, "b", (mf.Layer(mf.sha256_bytes(data), len(data)), data))
    assert sync.poll() is False
    assert f"version {broken}" in sync.status.last_error and "cannot be unpacked" in sync.status.last_error
    assert sync.current_version() == first
    assert not (sync.versions / broken).exists() and not list(sync.versions.glob("*.partial"))


def test_a_version_without_a_layer_for_this_platform_is_refused_before_any_download(task, tmp_path):
    s3, live, sync = task
    first = publish(s3, tmp_path, "a")
    assert sync.poll() is True
    layer = make_layer(tmp_path, "one")
    other = publish(s3, tmp_path, "b", layer, platform=OTHER)
    s3.gets.clear()
    assert sync.poll() is False
    error = sync.status.last_error
    assert f"version {other} has no dependency layer for {PLATFORM}" in error and OTHER in error
    assert "dags_layer_platforms" in error
    assert s3.gets == [mf.key(PREFIX, mf.MANIFEST)], "something was downloaded for a version this task cannot use"
    assert sync.current_version() == first and not (sync.versions / other).exists()
    assert not list(sync.versions.glob("*.partial"))


def test_the_platform_defaults_to_this_interpreters(tmp_path):
    sync = DagSync(S3(), "bucket", PREFIX, tmp_path / "dags")
    assert sync.platform == layers.host_target().name


def test_a_version_without_dependencies_after_one_with_has_no_layer(task, tmp_path):
    s3, live, sync = task
    publish(s3, tmp_path, "a", make_layer(tmp_path, "one"))
    assert sync.poll() is True
    plain = publish(s3, tmp_path, "b")
    assert sync.poll() is True, sync.status.last_error
    version_dir = sync.versions / plain
    assert not os.path.lexists(version_dir / layers.LINK)
    assert layers.pythonpath(version_dir, {}) == {}
    assert sorted(p.name for p in version_dir.iterdir()) == ["definitions.py"]


def test_prune_removes_layers_no_kept_version_uses(task, tmp_path, monkeypatch):
    s3, live, sync = task
    monkeypatch.setattr(sync_module, "KEEP_VERSIONS", 2)
    old, kept = make_layer(tmp_path, "old"), make_layer(tmp_path, "kept")
    root = layers.layers_dir(live)
    versions = []
    for name, layer in (("a", old), ("b", kept), ("c", None)):
        versions.append(publish(s3, tmp_path, name, layer))
        assert sync.poll() is True, sync.status.last_error
        past = time.time() - 100 + len(versions)  # the order they were synced in, whatever the clock's resolution
        os.utime(sync.versions / versions[-1], (past, past))
    # c went live: a is beyond KEEP_VERSIONS, and its layer with it; b's stays while b is kept
    assert sorted(p.name for p in sync.versions.iterdir()) == sorted(versions[1:])
    assert sorted(p.name for p in root.iterdir()) == [kept[0].sha256[:16]]
    assert (sync.versions / versions[1] / "definitions.py").is_file()
    assert (layers.pythonpath(sync.versions / versions[1], {})["PYTHONPATH"]) == str(
        (root / kept[0].sha256[:16]).resolve()
    )


def test_a_code_server_gets_the_versions_layer_on_its_pythonpath(tmp_path, monkeypatch):
    """What Popen is given (test_codeservers.py starts a real server importing a layer's module)."""
    site, version_dir = tmp_path / "layer", tmp_path / "v1"
    site.mkdir()
    version_dir.mkdir()
    layers.attach(version_dir, site)
    seen = []

    class Started(Exception):
        pass

    def popen(command, **kwargs):
        seen.append(kwargs.get("env"))
        raise Started

    monkeypatch.setattr(codeservers.subprocess, "Popen", popen)
    monkeypatch.setenv("PYTHONPATH", "/image")
    pool = codeservers.CodeServers(tmp_path / "sock")
    with pytest.raises(Started):
        pool.start(version_dir, "v1")
    with pytest.raises(Started):
        pool.start(tmp_path, "builtin")  # no layer: the environment as it is
    assert seen[0]["PYTHONPATH"] == os.pathsep.join([str(site.resolve()), "/image"])
    assert seen[1]["PYTHONPATH"] == "/image"


def test_validate_definitions_loads_with_the_versions_layer(tmp_path, monkeypatch):
    site, version_dir = tmp_path / "layer", tmp_path / "v1"
    site.mkdir()
    version_dir.mkdir()
    layers.attach(version_dir, site)
    calls = []

    def run(python, directory, module="definitions", timeout=180, env=None):
        calls.append((directory, env))
        return True, {"ok": True}

    monkeypatch.setattr(inspect, "run", run)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    entrypoint.validate_definitions(version_dir)
    assert calls[0][0] == version_dir and calls[0][1]["PYTHONPATH"] == str(site.resolve())


def test_a_run_task_puts_the_synced_versions_layer_on_the_run_workers_pythonpath(tmp_path, monkeypatch):
    from dagster_ecs_container.settings import Settings

    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_DAGS_BUCKET": "bucket"})
    site = tmp_path / "layer"
    site.mkdir()
    version_dir = links.versions_dir(settings.dags_dir) / "0123456789abcdef"
    version_dir.mkdir(parents=True)
    layers.attach(version_dir, site)
    synced, execs = [], []

    def initial_sync(settings, total, first, version=None):
        synced.append(version)
        links.point(settings.dags_dir, version_dir)

    monkeypatch.setattr(entrypoint, "initial_sync", initial_sync)
    monkeypatch.setattr(entrypoint, "write_all", lambda settings, role: None)
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, argv: execs.append((argv, os.environ.get("PYTHONPATH"))))
    monkeypatch.setenv("PYTHONPATH", "/image")
    argv = ["dagster", "api", "execute_run", f'{{"working_directory": "{version_dir}"}}']
    entrypoint.run_command(argv, settings)
    assert synced == ["0123456789abcdef"]
    assert execs == [(argv, os.pathsep.join([str(site.resolve()), "/image"]))]


def test_a_run_task_on_the_images_dags_leaves_pythonpath_alone(tmp_path, monkeypatch):
    from dagster_ecs_container.settings import Settings

    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path)})
    settings.builtin_dags_dir.mkdir(parents=True)
    links.point(settings.dags_dir, settings.builtin_dags_dir)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    entrypoint.use_layer(settings)
    assert "PYTHONPATH" not in os.environ

"""One DAG release: start -> swap both links -> reload -> commit, or roll back both links; its refusal and retry.

These run the real ``CodeServers`` (links, restore, retire, stop) with ``start`` replaced by a
process that needs no Dagster import; test_codeservers.py releases with real ``dagster api grpc`` servers.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from dagster_ecs_container import links
from dagster_ecs_container import manifest as mf
from dagster_ecs_container.codeservers import CodeServerError, CodeServers, Server
from dagster_ecs_container.memory import Budget
from dagster_ecs_container.release import Refused, Release
from dagster_ecs_container.sync import REJECTED_RETRY_SECONDS, DagSync, use_builtin
from support.fake_s3 import S3

GOOD = "import dagster as dg\n\n@dg.asset\ndef {name}():\n    return 1\n\ndefs = dg.Definitions(assets=[{name}])\n"


class Process:
    """A code server process that is already listening and stops when told."""

    def __init__(self):
        self.stopped = False

    def poll(self):
        return 0 if self.stopped else None

    def terminate(self):
        self.stopped = True

    kill = terminate

    def wait(self, timeout=None):
        return 0


class Servers(CodeServers):
    """The real pool, with servers that start at once; ``refuse`` names the versions that do not load."""

    def __init__(self, socket_dir, refuse=()):
        super().__init__(socket_dir)
        self.refuse = set(refuse)
        self.started: list[Server] = []
        self.attempts: list[str] = []  # every version a server was started for, loading or not

    def start(self, directory, version):
        self.attempts.append(version)
        if version in self.refuse:
            raise CodeServerError("dagster._core.errors.DagsterImportError: No module named 'pandas'")
        self.dir.mkdir(parents=True, exist_ok=True)
        server = Server(version, self.dir / f"{version}.sock", Process())
        server.socket.touch()
        self.started.append(server)
        return server


def stops(server, seconds=5.0) -> bool:
    """``retire`` stops the old server in a thread: wait for it."""
    deadline = time.monotonic() + seconds
    while server.running and time.monotonic() < deadline:
        time.sleep(0.01)
    return not server.running


def version_dir(tmp_path, live, name):
    directory = links.versions_dir(live) / name
    directory.mkdir(parents=True)
    (directory / "definitions.py").write_text(GOOD.format(name=f"asset_{name}"))
    return directory


@pytest.fixture
def task(tmp_path):
    """A sidecar's state after a first release: v1 live on its server, both links pointing at it."""
    live = tmp_path / "dags"
    servers = Servers(tmp_path / "sock")
    reloads = []
    refuse_reload = set()

    def reload(version):
        reloads.append(version)
        return version not in refuse_reload

    release = Release(live, servers, reload)
    release.go_live("v1", version_dir(tmp_path, live, "v1"))
    reloads.clear()
    return {
        "live": live,
        "servers": servers,
        "release": release,
        "reloads": reloads,
        "refuse_reload": refuse_reload,
        "v1": servers.current,
    }


def state(task):
    """Both links as written, and the live server."""
    return links.read(task["live"]), links.read(task["servers"].link), task["servers"].current


def test_a_release_swaps_both_links_reloads_the_webserver_and_stops_the_old_server(task, tmp_path):
    v2 = version_dir(tmp_path, task["live"], "v2")
    task["release"].go_live("v2", v2)
    new = task["servers"].current
    assert task["release"].stopped_first is None
    assert new.version == "v2" and new.running
    assert links.read(task["live"]) == str(v2) and links.live_version(task["live"]) == "v2"
    assert task["servers"].link.resolve() == new.socket
    assert task["reloads"] == ["v2"]
    assert stops(task["v1"]), "the old server keeps running after the release"


def test_a_version_whose_code_server_does_not_listen_moves_nothing(task, tmp_path):
    before = state(task)
    task["servers"].refuse.add("v2")
    with pytest.raises(Refused, match="version v2 refused, its definitions do not load: .*No module named 'pandas'"):
        task["release"].go_live("v2", version_dir(tmp_path, task["live"], "v2"))
    assert state(task) == before and task["v1"].running
    assert task["reloads"] == [], "the webserver was asked to reload a version that did not load"


@pytest.mark.parametrize("failure", ["refused", "raised"])
def test_a_reload_that_fails_rolls_back_both_links_to_exactly_what_they_were(task, tmp_path, failure, caplog):
    before = state(task)
    if failure == "refused":
        task["refuse_reload"].add("v2")
    else:
        task["release"].reload = lambda version: (task["reloads"].append(version), 1 / 0)[1]
    with pytest.raises(Refused, match="version v2 refused: the code location did not load it"):
        task["release"].go_live("v2", version_dir(tmp_path, task["live"], "v2"))
    assert state(task) == before
    (new,) = task["servers"].started[1:]
    assert not new.running and not new.socket.exists(), "the refused version's server still runs"
    assert task["v1"].running, "the previous server was stopped"
    assert task["reloads"] == ["v2", "v1"], "the webserver was not put back on the server it used"
    if failure == "raised":
        assert "reloading the code location for DAG version v2 failed: division by zero" in caplog.text


def test_a_swap_that_fails_half_way_is_rolled_back(task, tmp_path, monkeypatch):
    before = state(task)

    def no_socket_link(server):
        raise OSError("no space left on device")

    monkeypatch.setattr(task["servers"], "activate", no_socket_link)
    with pytest.raises(OSError, match="no space left"):
        task["release"].go_live("v2", version_dir(tmp_path, task["live"], "v2"))
    assert state(task) == before and task["v1"].running
    assert not task["servers"].started[1].running


def test_the_first_release_has_no_previous_version_or_server(tmp_path):
    live, servers = tmp_path / "dags", Servers(tmp_path / "sock")
    reloads = []
    release = Release(live, servers, lambda version: reloads.append(version) or False)
    with pytest.raises(Refused, match="did not load it"):
        release.go_live("v1", version_dir(tmp_path, live, "v1"))
    # Nothing was there before: nothing is there after, and no server to reload the webserver with.
    assert links.read(live) is None and links.read(servers.link) is None and servers.current is None
    assert reloads == ["v1"] and not servers.started[0].running
    release.reload = lambda version: True
    release.go_live("v1", links.versions_dir(live) / "v1")
    assert links.live_version(live) == "v1" and servers.link.resolve() == servers.current.socket


def test_in_the_daemons_task_a_release_reloads_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    live, servers = tmp_path / "dags", Servers(tmp_path / "sock")
    release = Release(live, servers)
    release.go_live("v1", version_dir(tmp_path, live, "v1"))
    first = servers.current
    release.go_live("v2", version_dir(tmp_path, live, "v2"))
    assert "DAG version v2 live; the daemon sees it from its next workspace refresh (<= 60 s)" in caplog.text
    assert servers.current.version == "v2" and stops(first)
    second = servers.current
    assert release.start_live() and servers.current.version == "v2" and stops(second)


def test_without_code_servers_a_release_is_the_dag_link_alone(tmp_path):
    live = tmp_path / "dags"
    release = Release(live)
    release.go_live("v1", version_dir(tmp_path, live, "v1"))
    assert links.live_version(live) == "v1"
    release.reload = lambda version: False
    with pytest.raises(Refused):
        release.go_live("v2", version_dir(tmp_path, live, "v2"))
    assert links.live_version(live) == "v1"


def test_the_sidecar_starts_a_server_for_what_is_live_and_sees_it_die(task, caplog):
    release, servers = task["release"], task["servers"]
    assert release.tick()
    task["v1"].process.terminate()
    assert not release.tick()
    assert release.start_live()
    assert servers.current.version == "v1" and servers.current is not task["v1"] and release.tick()
    assert task["reloads"] == ["v1"]
    servers.refuse.add("v1")
    assert release.start_live() is False
    assert "the live DAGs" in caplog.text and "do not load" in caplog.text


# --- a task whose memory does not hold two code servers: the old one stops first -----------------------------


class Short:
    """A Headroom that finds the task short of memory for every release (memory.py decides it for real)."""

    def __init__(self):
        self.asked = []

    def short(self, server, live_dir, new_dir):
        self.asked.append((server.version, live_dir.name, new_dir.name))
        return Budget(limit_mb=512, task_mb=400, server_mb=190, layer_delta_mb=120)


@pytest.fixture
def short(task):
    """``task``, short of memory; ``running_at_start``: which servers ran when each new server started."""
    task["release"].headroom = Short()
    servers, running = task["servers"], []
    start = servers.start

    def recording_start(directory, version):
        running.append((version, [s.version for s in servers.started if s.running]))
        return start(directory, version)

    servers.start = recording_start
    task["running_at_start"] = running
    return task


def test_short_of_memory_the_old_server_stops_before_the_new_one_starts(short, tmp_path, caplog):
    v2 = version_dir(tmp_path, short["live"], "v2")
    short["release"].go_live("v2", v2)
    assert short["running_at_start"] == [("v2", [])], "two code servers ran at once in a task short of memory"
    assert short["release"].headroom.asked == [("v1", "v1", "v2")]
    new = short["servers"].current
    assert new.version == "v2" and new.running and not short["v1"].running
    assert links.live_version(short["live"]) == "v2" and short["servers"].link.resolve() == new.socket
    assert short["reloads"] == ["v2"]
    assert short["release"].stopped_first == ("v2", str(Budget(512, 400, 190, 120)))  # POST /_dags/sync says so
    assert "two code servers at once would not fit in the task's memory (task 400 MB + new code server ~310 MB" in (
        caplog.text
    )
    assert "stopping the live server first" in caplog.text


def test_short_of_memory_a_version_that_does_not_load_brings_the_previous_one_back(short, tmp_path):
    short["servers"].refuse.add("v2")
    with pytest.raises(Refused, match="version v2 refused, its definitions do not load"):
        short["release"].go_live("v2", version_dir(tmp_path, short["live"], "v2"))
    again = short["servers"].current
    assert again.version == "v1" and again.running and again is not short["v1"]
    assert links.live_version(short["live"]) == "v1" and short["servers"].link.resolve() == again.socket
    assert short["reloads"] == ["v1"]


def test_short_of_memory_a_refused_reload_brings_the_previous_one_back(short, tmp_path):
    short["refuse_reload"].add("v2")
    with pytest.raises(Refused, match="the code location did not load it"):
        short["release"].go_live("v2", version_dir(tmp_path, short["live"], "v2"))
    refused = short["servers"].started[1]
    again = short["servers"].current
    assert not refused.running and again.version == "v1" and again.running
    assert links.live_version(short["live"]) == "v1" and short["servers"].link.resolve() == again.socket
    assert short["reloads"] == ["v2", "v1"]


# --- the sync: what is recorded, and when a refused version is tried again -------------------------------


def publish(s3, directory) -> str:
    files = mf.scan(directory)
    for path, entry in files.items():
        s3.objects[mf.key("dags/", mf.OBJECTS + entry.sha256)] = (directory / path).read_bytes()
    manifest = mf.Manifest(files=files)
    s3.objects[mf.key("dags/", mf.MANIFEST)] = manifest.to_json().encode()
    return manifest.version


def source(tmp_path, name, text=None):
    directory = tmp_path / "src" / name
    directory.mkdir(parents=True)
    (directory / "definitions.py").write_text(text or GOOD.format(name=name))
    return directory


@pytest.fixture
def clock():
    now = [1000.0]

    def read():
        return now[0]

    read.advance = lambda seconds: now.__setitem__(0, now[0] + seconds)
    return read


@pytest.fixture
def sidecar(tmp_path, clock):
    s3, servers = S3(), Servers(tmp_path / "sock")
    live = tmp_path / "task" / "dags"
    release = Release(live, servers, lambda version: True)
    sync = DagSync(s3, "bucket", "dags/", live, status_file=tmp_path / "status.json", release=release, clock=clock)
    return s3, servers, sync


def test_a_refused_version_is_recorded_and_staged_again_only_after_the_retry_delay(sidecar, tmp_path, clock):
    s3, servers, sync = sidecar
    first = publish(s3, source(tmp_path, "a"))
    assert sync.poll() is True
    broken = publish(s3, source(tmp_path, "b"))
    servers.refuse.add(broken)
    assert sync.poll() is False
    error = f"version {broken} refused, its definitions do not load: dagster._core.errors.DagsterImportError"
    assert sync.status.last_error.startswith(error)
    assert sync.current_version() == first and sync.status.version == first and servers.current.version == first
    assert not (sync.versions / broken).exists() and not list(sync.versions.glob("*.partial"))
    assert json.loads((tmp_path / "status.json").read_text())["last_error"] == sync.status.last_error
    starts = len(servers.attempts)

    clock.advance(REJECTED_RETRY_SECONDS - 1)
    assert sync.poll() is False  # the manifest is read again, the version is not staged again
    assert len(servers.attempts) == starts and not (sync.versions / broken).exists()
    assert sync.status.last_error.startswith(error) and sync.status.consecutive_failures == 2

    clock.advance(1)
    assert sync.poll() is False  # tried again: still refused, and the delay starts again
    assert len(servers.attempts) == starts + 1 and sync.status.consecutive_failures == 3
    clock.advance(REJECTED_RETRY_SECONDS - 1)
    assert sync.poll() is False and len(servers.attempts) == starts + 1

    servers.refuse.clear()  # the image now has what it lacked
    clock.advance(1)
    assert sync.poll() is True
    assert sync.current_version() == broken and sync.status.last_error is None and servers.current.version == broken


def test_a_new_version_is_staged_at_once_after_a_refused_one(sidecar, tmp_path):
    s3, servers, sync = sidecar
    publish(s3, source(tmp_path, "a"))
    assert sync.poll() is True
    servers.refuse.add(publish(s3, source(tmp_path, "b")))
    assert sync.poll() is False
    fixed = publish(s3, source(tmp_path, "c"))
    assert sync.poll() is True and sync.current_version() == fixed and sync.status.last_error is None


def test_a_version_the_webserver_refuses_is_refused_by_the_sync(sidecar, tmp_path):
    s3, servers, sync = sidecar
    first = publish(s3, source(tmp_path, "a"))
    assert sync.poll() is True
    refused = publish(s3, source(tmp_path, "b"))
    sync.release.reload = lambda version: version != refused
    assert sync.poll() is False
    assert sync.status.last_error == f"version {refused} refused: the code location did not load it"
    assert sync.current_version() == first and servers.current.version == first
    assert not (sync.versions / refused).exists()


def test_a_corrupt_object_is_refused_until_the_retry_delay_even_once_repaired(tmp_path, clock):
    s3, live = S3(), tmp_path / "dags"
    sync = DagSync(s3, "bucket", "dags/", live, clock=clock)
    directory = source(tmp_path, "a")
    version = publish(s3, directory)
    sha = mf.scan(directory)["definitions.py"].sha256
    s3.objects[mf.key("dags/", mf.OBJECTS + sha)] = b"tampered"
    assert sync.poll() is False and "corrupt (sha256 mismatch)" in sync.status.last_error
    publish(s3, directory)  # the object repaired
    assert sync.poll() is False and "corrupt" in sync.status.last_error
    clock.advance(REJECTED_RETRY_SECONDS)
    assert sync.poll() is True and sync.current_version() == version


def test_the_validation_hook_refuses_a_version_where_no_code_server_checks_it(tmp_path):
    s3, live = S3(), tmp_path / "dags"

    def validate(directory):
        raise RuntimeError("pipelines/broken.py: boom")

    sync = DagSync(s3, "bucket", "dags/", live, validate=validate)
    version = publish(s3, source(tmp_path, "a"))
    assert sync.poll() is False
    assert (
        sync.status.last_error == f"version {version} refused, its definitions do not load: pipelines/broken.py: boom"
    )
    assert links.read(live) is None and not (sync.versions / version).exists()


def test_the_images_dags_serve_until_a_version_is_synced(tmp_path):
    live, builtin, status = tmp_path / "dags", tmp_path / "builtin", tmp_path / "status.json"
    builtin.mkdir()
    use_builtin(live, builtin, status)
    assert links.read(live) == str(builtin)
    assert json.loads(status.read_text())["source"] == "builtin"
    assert json.loads(status.read_text())["version"] is None
    synced = version_dir(tmp_path, live, "0123456789abcdef")
    links.point(live, synced)
    status.unlink()
    use_builtin(live, builtin, status)
    assert links.read(live) == str(synced) and not status.exists(), "the image's copy replaced a synced version"


def test_the_sidecars_sync_has_no_second_check_and_a_run_tasks_has_one(tmp_path, monkeypatch):
    from dagster_ecs_container import entrypoint
    from dagster_ecs_container.settings import Settings

    monkeypatch.setattr(entrypoint, "_aws", lambda service: S3())
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_DAGS_BUCKET": "bucket"})
    release = Release(settings.dags_dir, Servers(tmp_path / "sock"))
    sidecar = entrypoint.make_sync(settings, release)
    assert sidecar.release is release and sidecar.validate is None
    run_task = entrypoint.make_sync(settings, version="0123456789abcdef")
    assert run_task.validate is entrypoint.validate_definitions and run_task.release.servers is None
    assert run_task.manifest_name == "manifests/0123456789abcdef.json"
    assert sidecar.status_file == run_task.status_file == tmp_path / "run" / "sync-status.json"

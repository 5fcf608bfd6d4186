"""The sidecar's code servers, with real `dagster api grpc` processes (a few seconds each)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from dagster_ecs_container import layers, links
from dagster_ecs_container.codeservers import CodeServerError, CodeServers
from dagster_ecs_container.release import Refused, Release

GOOD = "import dagster as dg\n\n@dg.asset\ndef {name}():\n    return 1\n\ndefs = dg.Definitions(assets=[{name}])\n"


def _accepts(path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def servers(tmp_path):
    pool = CodeServers(tmp_path / "sock", startup_timeout=60)
    yield pool
    pool.stop_all()


def _version(tmp_path, name, text):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "definitions.py").write_text(text)
    return directory


def test_a_version_goes_live_only_once_its_server_listens_and_the_old_one_stops(tmp_path, servers):
    first = servers.start(_version(tmp_path, "v1", GOOD.format(name="a")), "v1")
    assert servers.activate(first) is None and _accepts(servers.link)
    # Started from a thread that ends right away, as a POST /_dags/sync request's thread does: the
    # server must outlive it (PR_SET_PDEATHSIG would have killed it with the thread).
    started = []
    thread = threading.Thread(
        target=lambda: started.append(servers.start(_version(tmp_path, "v2", GOOD.format(name="b")), "v2"))
    )
    thread.start()
    thread.join()
    second = started[0]
    time.sleep(1)
    assert second.running, "the code server died with the thread that started it"
    assert servers.activate(second) is first
    servers.retire(first)
    deadline = time.monotonic() + 20
    while first.running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not first.running and second.running
    assert servers.link.resolve() == second.socket and _accepts(servers.link)


def test_a_version_that_does_not_load_never_gets_a_socket(tmp_path, servers):
    good = servers.start(_version(tmp_path, "ok", GOOD.format(name="a")), "ok")
    servers.activate(good)
    broken = _version(tmp_path, "broken", "import not_installed_anywhere\n")
    with pytest.raises(CodeServerError, match="not_installed_anywhere"):
        servers.start(broken, "broken")
    assert servers.current is good and servers.link.resolve() == good.socket and good.running
    assert servers.tick()


def test_a_release_moves_the_dag_and_socket_links_together_or_not_at_all(tmp_path, servers):
    """release.Release with real servers: refused by its server or by the webserver, nothing moves."""
    live = tmp_path / "dags"
    reloads, refused = [], {"v3"}
    release = Release(live, servers, lambda version: reloads.append(version) or version not in refused)
    release.go_live("v1", _version(tmp_path, "v1", GOOD.format(name="a")))
    live_server = servers.current
    before = (links.read(live), links.read(servers.link))
    assert before == (str(tmp_path / "v1"), live_server.socket.name) and _accepts(servers.link)

    with pytest.raises(Refused, match="v2 refused, its definitions do not load: .*not_installed_anywhere"):
        release.go_live("v2", _version(tmp_path, "v2", "import not_installed_anywhere\n"))
    assert (links.read(live), links.read(servers.link)) == before and servers.current is live_server

    with pytest.raises(Refused, match="v3 refused: the code location did not load it"):
        release.go_live("v3", _version(tmp_path, "v3", GOOD.format(name="c")))
    assert (links.read(live), links.read(servers.link)) == before and servers.current is live_server
    assert live_server.running and _accepts(servers.link)
    assert reloads == ["v1", "v3", "v1"], "the webserver was not put back on the server it used"
    assert sorted(p.name for p in servers.dir.iterdir()) == sorted([live_server.socket.name, "live.sock"])


def test_a_code_server_imports_its_versions_dependency_layer(tmp_path, servers):
    """The version's ``.layer`` is on the server's PYTHONPATH; without it the same definitions do not load."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "extra_layer_mod.py").write_text("NAME = 'from_the_layer'\n")
    text = (
        "import dagster as dg\nimport extra_layer_mod\n\n"
        "@dg.asset(name=extra_layer_mod.NAME)\ndef a():\n    return 1\n\ndefs = dg.Definitions(assets=[a])\n"
    )
    without = _version(tmp_path, "without", text)
    with pytest.raises(CodeServerError, match="extra_layer_mod"):
        servers.start(without, "without")
    version = _version(tmp_path, "v1", text)
    layers.attach(version, site)
    server = servers.start(version, "v1")
    servers.activate(server)  # live, so the fixture's stop_all stops it
    assert server.running and _accepts(server.socket)

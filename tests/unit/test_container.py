"""The container package's pure logic: rendered configuration, manifest format, bundles, publish planning."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from dagster_ecs_container import manifest as mf
from dagster_ecs_container.config import render, supervisord_conf, template, values
from dagster_ecs_container.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))

from dagster_ecs_container import plan  # noqa: E402


@pytest.mark.parametrize("launcher", ["default", "ecs"])
def test_dagster_yaml_renders_to_one_valid_document(tmp_path, launcher):
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_RUN_LAUNCHER": launcher})
    rendered = render(template("dagster.yaml"), values(settings))
    document = yaml.safe_load(rendered)  # one document: a second '---' would raise
    assert "postgres" in document["storage"]
    assert document["run_coordinator"]["class"] == "QueuedRunCoordinator"
    expected = "GuardedEcsRunLauncher" if launcher == "ecs" else "DefaultRunLauncher"
    assert document["run_launcher"]["class"] == expected
    assert document["run_monitoring"]["enabled"] is True
    assert "password" not in rendered.replace("password: {env: DAGSTER_POSTGRES_PASSWORD}", "")


def test_both_roles_load_from_the_sidecars_code_server(tmp_path):
    """No python_module location: the webserver and the daemon would start code servers themselves
    (the daemon a new one every minute, the webserver a new one per reload, leaking the old)."""
    from dagster_ecs_container.config import write_all

    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path)})
    for role, program in (("webserver", "webserver"), ("daemon", "daemon")):
        write_all(settings, role)
        workspace = yaml.safe_load(settings.workspace.read_text())
        assert workspace["load_from"] == [
            {"grpc_server": {"socket": str(settings.codeserver_socket), "location_name": "dags"}}
        ]
        conf = (settings.runtime_dir / "supervisord.conf").read_text()
        section = conf.split(f"[program:{program}]")[1].split("\n\n")[0]
        assert f"after-socket {settings.codeserver_socket} " in section, "must wait for the code server"


def test_socket_paths_fit_sun_path(tmp_path):
    deep = tmp_path / ("x" * 120)
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_RUNTIME_DIR": str(deep)})
    assert len(str(settings.codeserver_dir / "0123456789abcdef-4194304-999.sock")) < 100
    assert settings.codeserver_dir == Settings.from_env({"DAGSTER_RUNTIME_DIR": str(deep)}).codeserver_dir
    short = Settings.from_env({"DAGSTER_APP_DIR": "/opt/dagster"})
    assert short.codeserver_dir == Path("/opt/dagster/run/codeserver")


def test_supervisor_socket_fits_sun_path(tmp_path):
    """A checkout at a long path: supervisord's socket moves to the short directory (sun_path: 108 bytes)."""
    deep = tmp_path / ("x" * 120) / "runtime" / "tasks" / "webserver" / "run"
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_RUNTIME_DIR": str(deep)})
    assert len(str(settings.runtime_dir / "supervisor.sock")) > 108
    assert len(str(settings.supervisor_socket)) < 100
    assert settings.supervisor_socket.parent == settings.codeserver_dir
    conf = supervisord_conf(settings, "webserver")
    assert f"file={settings.supervisor_socket}\n" in conf
    assert f"serverurl=unix://{settings.supervisor_socket}\n" in conf
    short = Settings.from_env({"DAGSTER_APP_DIR": "/opt/dagster"})
    assert short.supervisor_socket == Path("/opt/dagster/run/supervisor.sock")


def test_after_socket_waits_for_a_listener_then_execs(tmp_path):
    import socket
    import subprocess
    import threading

    path = tmp_path / "s.sock"
    marker = tmp_path / "ran"
    command = [sys.executable, "-m", "dagster_ecs_container", "after-socket", str(path), "touch", str(marker)]
    child = subprocess.Popen(command)
    with socket.socket(socket.AF_UNIX) as server:
        threading.Timer(1.0, lambda: (server.bind(str(path)), server.listen())).start()
        assert child.wait(30) == 0
    assert marker.exists()


def test_a_code_server_error_names_the_exception():
    from dagster_ecs_container.codeservers import failure

    output = [
        "Traceback (most recent call last):\n",
        '  File "x.py", line 3, in <module>\n',
        "dagster._core.errors.DagsterImportError: Encountered ImportError: `No module named 'pandas'`\n",
        "\n",
    ]
    assert failure(output).startswith("dagster._core.errors.DagsterImportError: Encountered ImportError")
    assert failure(["only this\n"]) == "only this"
    assert failure([]) == "no output"


def test_render_refuses_unknown_tokens():
    with pytest.raises(KeyError, match="nope"):
        render("{{ nope }}", {})


def test_supervisord_runs_nginx_only_for_the_webserver(tmp_path):
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path)})
    assert "[program:nginx]" in supervisord_conf(settings, "webserver")
    assert "[program:nginx]" not in supervisord_conf(settings, "daemon")
    with pytest.raises(ValueError, match="unknown role"):
        supervisord_conf(settings, "scheduler")


def _tree(tmp_path, files):
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return mf.scan(tmp_path)


def test_scan_skips_caches_tests_and_hidden_files(tmp_path):
    files = _tree(
        tmp_path,
        {"definitions.py": "x", "p/a.py": "a", "p/__pycache__/a.pyc": "", "tests/t.py": "", ".env": "", "p/b.py~": ""},
    )
    assert sorted(files) == ["definitions.py", "p/a.py"]


def test_manifest_round_trip_and_content_version(tmp_path):
    files = _tree(tmp_path, {"definitions.py": "x", "p/a.py": "a"})
    manifest = mf.Manifest(files=files, assets=["a"], bundle=mf.Bundle("0" * 64, 10, "v"))
    again = mf.Manifest.from_json(manifest.to_json())
    assert again.files == files and again.version == manifest.version and again.bundle == manifest.bundle
    assert mf.Manifest(files=dict(files)).version == manifest.version  # who or when does not matter


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "not JSON"),
        ('{"format": 2}', "unsupported manifest format"),
        ('{"format": 1, "files": {}}', "lists no files"),
        ('{"format": 1, "files": {"../x.py": {"sha256": "' + "0" * 64 + '"}}}', "unsafe path"),
        ('{"format": 1, "files": {"/etc/x": {"sha256": "' + "0" * 64 + '"}}}', "unsafe path"),
        ('{"format": 1, "files": {"a.py": {"sha256": "zz"}}}', "bad entry"),
        ('{"format": 1, "version": "x", "files": {"a.py": {"sha256": "' + "0" * 64 + '"}}}', "does not match"),
    ],
)
def test_bad_manifests_are_refused(text, error):
    with pytest.raises(mf.ManifestError, match=error):
        mf.Manifest.from_json(text)


def test_bundle_is_deterministic_and_extracts_only_wanted_paths(tmp_path):
    files = _tree(tmp_path / "src", {"definitions.py": "x", "p/a.py": "a", "p/b.py": "b"})
    first = mf.make_bundle(tmp_path / "src", files)
    assert mf.make_bundle(tmp_path / "src", files) == first
    written = mf.extract_bundle(first, tmp_path / "out", {"p/a.py", "definitions.py"})
    assert written == {"p/a.py", "definitions.py"}
    assert not (tmp_path / "out" / "p" / "b.py").exists()


def test_a_bundle_cannot_write_outside_the_wanted_paths(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name in ("../escape.py", "/abs.py", "ok.py"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("link.py")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    written = mf.extract_bundle(raw.getvalue(), tmp_path / "out", {"ok.py", "link.py"})
    assert written == {"ok.py"}
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "out" / "link.py").exists()


def test_publish_plan_lists_added_changed_removed_and_uploads_each_content_once():
    entry = mf.FileEntry
    current = {"a.py": entry("1" * 64, 1), "b.py": entry("2" * 64, 1), "gone.py": entry("3" * 64, 1)}
    desired = {"a.py": entry("1" * 64, 1), "b.py": entry("4" * 64, 1), "new.py": entry("4" * 64, 1)}
    assert plan.plan(current, desired) == (["new.py"], ["b.py"], ["gone.py"])
    assert plan.objects_to_upload(current, desired) == ["4" * 64]
    assert plan.objects_to_upload(current, current) == []


def test_bundle_staleness_threshold():
    entry = mf.FileEntry
    files = {f"f{n}.py": entry(f"{n:064d}", 1) for n in range(400)}
    assert plan.bundle_is_stale(None, files)
    assert not plan.bundle_is_stale(files, files)
    changed = dict(files, **{f"f{n}.py": entry("f" * 64, 1) for n in range(40)})
    assert not plan.bundle_is_stale(files, changed)  # 40 of 400: 10 %, reused
    changed = dict(files, **{f"f{n}.py": entry("f" * 64, 1) for n in range(41)})
    assert plan.bundle_is_stale(files, changed)


def test_prune_keeps_the_newest_and_always_the_live_version():
    history = [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    assert plan.prune_plan(history, "d", 2) == (["b", "a"], ["d", "c"])
    assert plan.prune_plan(history, "a", 2) == (["b"], ["d", "c", "a"])


def test_a_webserver_that_is_not_up_does_not_refuse_a_validated_version(tmp_path):
    import socket

    from dagster_ecs_container.webserver import reload_webserver

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_WEBSERVER_PORT": str(port)})
    assert reload_webserver(settings.graphql_url, "0123456789abcdef") is True


@pytest.fixture
def graphql_answers():
    """A loopback GraphQL endpoint answering each POST with the next JSON body of the list; the requests seen."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps(answers.pop(0)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/graphql", answers, seen
    server.shutdown()
    server.server_close()


def test_the_webserver_reload_says_whether_the_location_loaded(graphql_answers, caplog):
    from dagster_ecs_container.webserver import LOCATION, reload_webserver

    url, answers, seen = graphql_answers
    loaded = {"__typename": "WorkspaceLocationEntry", "loadStatus": "LOADED"}
    answers.append(
        {"data": {"reloadRepositoryLocation": {**loaded, "locationOrLoadError": {"__typename": "RepositoryLocation"}}}}
    )
    assert reload_webserver(url, "0123456789abcdef") is True
    assert seen[0]["variables"] == {"name": LOCATION} and "reloadRepositoryLocation" in seen[0]["query"]
    error = {"__typename": "PythonError", "message": "ImportError: pretend the image lacks a package"}
    answers.append({"data": {"reloadRepositoryLocation": {**loaded, "locationOrLoadError": error}}})
    assert reload_webserver(url, "fedcba9876543210") is False
    assert "could not load DAG version fedcba9876543210: ImportError: pretend the image lacks a package" in caplog.text
    answers.append(
        {"data": {"reloadRepositoryLocation": {"__typename": "RepositoryLocationNotFound", "message": "no dags"}}}
    )
    assert reload_webserver(url, "fedcba9876543210") is False
    assert "no dags" in caplog.text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"data": {"workspaceOrError": {"__typename": "PythonError"}}}, (False, "workspace unavailable")),
        (
            {"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": []}}},
            (False, "no code location"),
        ),
        (
            {"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [{"loadStatus": "LOADING"}]}}},
            (False, "code location loading"),
        ),
        (
            {
                "data": {
                    "workspaceOrError": {
                        "__typename": "Workspace",
                        "locationEntries": [
                            {"loadStatus": "LOADED", "locationOrLoadError": {"__typename": "PythonError"}}
                        ],
                    }
                }
            },
            (False, "code location failed to load"),
        ),
        (
            {
                "data": {
                    "workspaceOrError": {
                        "__typename": "Workspace",
                        "locationEntries": [
                            {"loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation"}}
                        ],
                    }
                }
            },
            (True, "ok"),
        ),
    ],
)
def test_the_health_check_reads_the_webservers_code_locations(graphql_answers, answer, expected):
    from dagster_ecs_container.webserver import check_webserver

    url, answers, seen = graphql_answers
    answers.append(answer)
    assert check_webserver(url) == expected
    assert "variables" not in seen[0]
    assert check_webserver("http://127.0.0.1:9/graphql") == (False, "dagster webserver not answering")


def test_nginx_runs_without_the_database_password(tmp_path):
    """nginx never opens the storage: supervisord starts it with the password removed from its environment."""
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path)})
    (nginx,) = [line for line in supervisord_conf(settings, "webserver").splitlines() if "nginx.conf" in line]
    assert nginx.split()[1:3] == ["-u", "DAGSTER_POSTGRES_PASSWORD"]
    assert nginx.split()[0].endswith("env")


@pytest.mark.parametrize("role", ["webserver", "daemon"])
def test_the_basic_auth_pair_leaves_the_environment_before_any_child(role, tmp_path, monkeypatch):
    """After the htpasswd (step 1), BASIC_AUTH_* are gone: supervisord and everything it starts inherit none."""
    from dagster_ecs_container import entrypoint

    env = {"DAGSTER_APP_DIR": str(tmp_path), "BASIC_AUTH_USER": "admin", "BASIC_AUTH_PASSWORD": "s3cret-basic"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen = {}

    def storage_check():
        seen.update({name: os.environ.get(name) for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASSWORD")})
        raise RuntimeError("stop here")

    monkeypatch.setattr(entrypoint, "check_database", storage_check)
    assert entrypoint.start_service(role, Settings.from_env(dict(os.environ))) == 1
    assert seen == {"BASIC_AUTH_USER": None, "BASIC_AUTH_PASSWORD": None}
    if role == "webserver":
        assert (tmp_path / "run" / "htpasswd").read_text().startswith("admin:$2")


def test_migrate_configures_the_instance_without_the_ecs_launcher_then_execs_dagster(tmp_path, monkeypatch):
    # The migration task has the run task definition's environment, which names no run task definition:
    # `dagster instance migrate` loads the whole instance, so its dagster.yaml must not need one.
    from dagster_ecs_container import entrypoint

    env = {"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home"), "DAGSTER_RUN_LAUNCHER": "ecs"}
    settings = Settings.from_env(env)
    monkeypatch.setattr(entrypoint.Settings, "from_env", lambda *args: settings)
    calls = []
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, argv: calls.append(argv))
    assert entrypoint.main(["migrate"]) == 0
    assert calls == [["dagster", "instance", "migrate"]]
    document = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    assert document["run_launcher"]["class"] == "DefaultRunLauncher"
    assert "postgres" in document["storage"]

"""Sockets and the local PostgreSQL's directory in /tmp: a name someone else took first is refused.

``shared`` plays /tmp (mode 1777) inside the test's own directory. The tests run as root (the
rehearsal's machine): uid 65534 plays the other local user.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from dagster_ecs_container import codeservers, entrypoint
from dagster_ecs_container import settings as settings_module
from dagster_ecs_container.codeservers import CodeServers
from dagster_ecs_container.settings import Settings, private_dir
from dagster_ecs_emulator.localdb import LocalDatabase

OTHER = 65534  # nobody

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes files of another user: runs as root")


@pytest.fixture
def shared(tmp_path):
    directory = tmp_path / "tmp"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_directory_is_created_0700_and_ours(shared):
    path = private_dir(shared / "dagster-ecs-0123456789ab")
    assert path.is_dir() and _mode(path) == 0o700 and path.stat().st_uid == os.geteuid()


def test_an_existing_directory_of_ours_with_mode_0700_is_used(shared):
    path = shared / "dagster-ecs-0123456789ab"
    path.mkdir(mode=0o700)
    (path / "live.sock").touch()
    assert private_dir(path) == path and (path / "live.sock").exists()


def test_a_directory_anyone_may_write_to_is_refused(shared):
    path = shared / "dagster-ecs-0123456789ab"
    path.mkdir()
    path.chmod(0o777)
    with pytest.raises(PermissionError, match=r"has mode 0777.*rm -rf " + str(path)):
        private_dir(path)


def test_a_directory_of_another_user_is_refused(shared):
    path = shared / "dagster-ecs-0123456789ab"
    path.mkdir(mode=0o700)
    os.chown(path, OTHER, OTHER)
    with pytest.raises(PermissionError, match=rf"{path} is owned by uid {OTHER}, not {os.geteuid()}"):
        private_dir(path)


def test_a_symlink_is_refused_and_its_target_left_alone(shared, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    path = shared / "dagster-ecs-0123456789ab"
    path.symlink_to(target)
    with pytest.raises(PermissionError, match=r"is a symlink.*rm -rf"):
        private_dir(path)
    assert _mode(target) == 0o755 and list(target.iterdir()) == []


def test_outside_a_shared_directory_it_is_mkdir_p_as_before(tmp_path):
    """The task's runtime directory (umask's mode, made by the entrypoint): used as it is, parents made."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o755)
    assert private_dir(runtime) == runtime and _mode(runtime) == 0o755
    deep = private_dir(tmp_path / "a" / "b" / "codeserver")
    assert deep.is_dir() and _mode(deep) == 0o700


def test_the_code_servers_refuse_a_socket_directory_someone_else_made(shared, tmp_path, monkeypatch):
    taken = shared / "dagster-ecs-0123456789ab"
    taken.mkdir()
    taken.chmod(0o777)

    def no_server(*args, **kwargs):
        raise AssertionError("a code server was started with its socket in someone else's directory")

    monkeypatch.setattr(codeservers.subprocess, "Popen", no_server)
    with pytest.raises(PermissionError, match="has mode 0777"):
        CodeServers(taken).start(tmp_path, "v1")


def test_the_entrypoint_refuses_a_supervisor_socket_directory_someone_else_made(shared, tmp_path, monkeypatch):
    taken = shared / "dagster-ecs-0123456789ab"
    taken.mkdir(mode=0o700)
    os.chown(taken, OTHER, OTHER)
    monkeypatch.setattr(settings_module, "short_socket_dir", lambda runtime_dir: taken)
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path / ("x" * 120))})
    assert settings.supervisor_socket.parent == taken

    def no_step(*args, **kwargs):
        raise AssertionError("the entrypoint went on with supervisord's socket in someone else's directory")

    monkeypatch.setattr(entrypoint, "_step", no_step)
    with pytest.raises(PermissionError, match=f"owned by uid {OTHER}"):
        entrypoint.start_service("daemon", settings)


@pytest.fixture
def database(shared, tmp_path, monkeypatch):
    """The local runtime's PostgreSQL as root: its home in (our) /tmp, run as another user; no server."""
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    db = LocalDatabase({"identifier": "db", "bindir": str(tmp_path)}, tmp_path / "state", "http://127.0.0.1:9", "x")
    assert db.user is not None and db.user.pw_uid != 0 and db.home.parent == shared
    db._run = lambda *args, **kwargs: None  # initdb
    return db


INSTANCE = {"identifier": "db", "dbi_resource_id": "db-1", "master_username": "u", "password_verifier": "SCRAM"}


def test_the_database_home_in_tmp_is_the_server_users_and_checked_when_reused(database):
    database._init(INSTANCE)
    info = os.lstat(database.home)
    assert (info.st_uid, info.st_gid, _mode(database.home)) == (database.user.pw_uid, database.user.pw_gid, 0o700)
    database._init(INSTANCE)  # again (a rehearsal after a restart): the server user's own directory is fine
    database.home.chmod(0o777)
    with pytest.raises(PermissionError, match=f"{database.home} has mode 0777"):
        database._init(INSTANCE)
    os.chown(database.home, OTHER if database.user.pw_uid != OTHER else 0, -1)
    database.home.chmod(0o700)
    with pytest.raises(PermissionError, match="is owned by uid"):
        database._init(INSTANCE)


def test_the_database_home_is_not_taken_over_from_someone_else(database):
    """``mkdir -m777 D`` before the rehearsal: the home is refused, not chowned to the server's user."""
    database.home.mkdir()
    database.home.chmod(0o777)
    with pytest.raises(PermissionError, match="rm -rf"):
        database._init(INSTANCE)
    assert os.lstat(database.home).st_uid == 0


def test_chown_of_the_database_files_does_not_follow_symlinks(database, tmp_path):
    """``ln -s /etc/hostname D/x``: root hands the server's user its files, never what they point to."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hostname").write_text("secret\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "file").write_text("secret\n")
    home = database.home
    home.mkdir(mode=0o700)
    (home / "data").mkdir()
    (home / "data" / "PG_VERSION").write_text("16\n")
    (home / "x").symlink_to(outside / "hostname")
    (home / "data" / "linked").symlink_to(outside)
    database._chown(home)
    uid = database.user.pw_uid
    for path in (outside, outside / "hostname", outside / "sub", outside / "sub" / "file"):
        assert os.lstat(path).st_uid == 0, path
    for path in (home, home / "data", home / "data" / "PG_VERSION", home / "x", home / "data" / "linked"):
        assert os.lstat(path).st_uid == uid, path
    (home / "postgres.log").symlink_to(outside / "hostname")
    with pytest.raises(OSError, match="postgres.log"):  # the log, touched by root before pg_ctl: not via a symlink
        database._start(INSTANCE)
    assert os.lstat(outside / "hostname").st_uid == 0


def _home(shared, name, owner, uid) -> Path:
    home = shared / f"dagster-ecs-postgres-{name}"
    (home / "data").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    if owner is not None:
        (home / "state-dir").write_text(str(owner))
    os.chown(home, uid, uid)
    return home


def test_a_new_database_removes_the_servers_whose_state_dir_is_gone(database, shared, tmp_path):
    """`make clean` or a test's temporary directory took the state dir: the server's /tmp directory went on."""
    uid = database.user.pw_uid
    gone = _home(shared, "gone", tmp_path / "deleted-state", uid)
    (gone / "data" / "postmaster.pid").write_text("4321\n")  # its server still runs
    idle = _home(shared, "idle", tmp_path / "deleted-too", uid)  # its server was stopped (make down)
    alive = _home(shared, "alive", tmp_path, uid)  # a state dir that exists: another rehearsal's
    legacy = _home(shared, "legacy", None, uid)  # from before the owner file: whose it is is unknown
    foreign = _home(shared, "foreign", tmp_path / "deleted-state", OTHER)  # a name someone else took
    stopped = []
    database._stop_data = stopped.append
    database._init(INSTANCE)
    assert stopped == [gone / "data"]
    assert not gone.exists() and not idle.exists()
    assert alive.exists() and legacy.exists() and foreign.exists()
    # This database's own directory names its state dir, and is kept by the next collection.
    assert (database.home / "state-dir").read_text() == str((tmp_path / "state").resolve())
    database._init(INSTANCE)
    assert database.home.exists() and alive.exists()


def test_the_owner_file_is_not_followed_through_a_symlink(database, shared, tmp_path):
    home = _home(shared, "linked", None, database.user.pw_uid)
    (tmp_path / "elsewhere").write_text(str(tmp_path / "deleted-state"))
    (home / "state-dir").symlink_to(tmp_path / "elsewhere")
    database._stop_data = lambda data: None
    database._init(INSTANCE)
    assert home.exists()

"""Fixtures for the collection's unit tests: modules run in-process against moto, errors injected.

* ``run_module(module, args, check_mode=..., diff=...)`` runs a module's ``main()`` the way
  Ansible does (args through ``patch_module_args``, the real ``exit_json``/``fail_json``) and
  returns the JSON result it printed; a failure has ``failed: true``.
* ``aws`` gives a test fresh state in moto's in-process ``mock_aws`` (no network) and routes every boto3 call through
  :class:`FakeAws`, which records calls, injects errors (throttling, AccessDenied, 5xx) and
  fills the few gaps of moto 5.2.5 that these modules meet with the offline emulator's own shim
  code (``localstack/dagster_ecs_emulator/compat/``). Retry back-off sleeps are recorded, not slept.
* ``clock`` replaces the time of ``module_utils.common.wait_until`` with a fake one (action/conftest.py: and of the
  stack_health action plugin's loop).
* ``http_server`` is a tiny HTTP server on 127.0.0.1 (a free port) answering from a route table.

``ansible-test units`` runs each test in a fork of its own (its ``ansible_forked`` plugin), so what a test imports or
parses is lost with its process: there, ``pytest_collection_finish`` loads the moto backends and botocore models of
the services the collection names once, in the process the tests are forked from (see ``warm_up``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from pathlib import Path
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.dagster_ecs.fargate.plugins.module_utils import common
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import (
    REGION,
    FakeAws,
    FakeClock,
    LocalServer,
    run_module,
)
from botocore import xform_name
from botocore.client import BaseClient
from botocore.config import Config
from moto import mock_aws
from moto.core.base_backend import BackendDict

COLLECTION = Path(__file__).resolve().parents[3]
# One botocore data loader per search path, for every session of the run (and, filled by warm_up, every fork).
LOADERS = {}
ORIGINAL_CREATE_LOADER = botocore.session.create_loader


def create_shared_loader(search_path_string=None):
    if search_path_string not in LOADERS:
        LOADERS[search_path_string] = ORIGINAL_CREATE_LOADER(search_path_string)
    return LOADERS[search_path_string]


@pytest.fixture(autouse=True, scope="session")
def shared_botocore_loader():
    """One botocore data loader for every session: each module run creates boto3 sessions, and each
    new loader parses the service models again (most of these tests' CPU time). Read-only, so sharing
    changes nothing else."""
    botocore.session.create_loader = create_shared_loader
    yield
    botocore.session.create_loader = ORIGINAL_CREATE_LOADER


def services() -> list[str]:
    """The AWS services the collection's Python and these tests create clients of (``client(module, "ecs")``,
    ``aws.client("ecs")``), read from their source."""
    found = set()
    for path in [*(COLLECTION / "plugins").rglob("*.py"), *(COLLECTION / "tests" / "unit").rglob("*.py")]:
        found.update(re.findall(r"""client\((?:module, )?["']([a-z0-9-]+)["']""", path.read_text()))
    return sorted(found)


def a_read_without_arguments(client) -> str | None:
    """The first List/Describe operation of a service that needs no argument (its method name), if any."""
    model = client.meta.service_model
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if name.startswith(("List", "Describe")) and not (shape and shape.required_members):
            return xform_name(name)
    return None


def warm_up() -> None:
    """Send one request to each service the tests call, to moto, in this process: it imports the service's moto
    backend and parses its botocore model (botocore's for the client, moto's own for its routing).

    A forked test inherits what they loaded; without this, each of ansible-test's forks loads them again (about a
    second a test). The state the requests leave is reset, as each test's ``aws`` fixture resets it."""
    botocore.session.create_loader = create_shared_loader
    try:
        with mock_aws():
            session = boto3.session.Session(
                aws_access_key_id="warm-up", aws_secret_access_key="warm-up", region_name=REGION
            )
            # moto answers these services; should one not be, its one attempt fails fast
            config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1)
            for service in services():
                client = session.client(service, config=config)
                operation = a_read_without_arguments(client)
                if operation:
                    with contextlib.suppress(Exception):  # moto may not implement it: the loading is done
                        getattr(client, operation)()
        BackendDict.reset()
    finally:
        botocore.session.create_loader = ORIGINAL_CREATE_LOADER


def pytest_collection_finish(session):
    # Only where each test runs in a fork of its own (ansible-test units): in one process, the first test loads them.
    forked = session.config.pluginmanager.has_plugin("ansible_forked")
    if forked and session.items and not session.config.option.collectonly:
        warm_up()
        # What is loaded now stays: the forks' garbage collector does not walk it, so does not copy its memory.
        gc.freeze()


@pytest.fixture(name="run_module")
def run_module_fixture():
    return run_module


@pytest.fixture(scope="module")
def moto_started():
    """moto's mock, started once per test file (starting it costs more than most tests)."""
    with mock_aws():
        yield


@pytest.fixture
def aws(moto_started, monkeypatch):
    """Fresh moto state with fake credentials; the :class:`FakeAws` that sees every call."""
    BackendDict.reset()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    fake = FakeAws()
    monkeypatch.setattr(BaseClient, "_make_api_call", fake.intercept(BaseClient._make_api_call))
    # amazon.aws's retry loop sleeps through cloud.time.sleep: record the back-off instead
    monkeypatch.setattr(cloud, "time", SimpleNamespace(sleep=fake.sleeps.append))
    yield fake
    BackendDict.reset()


@pytest.fixture
def clock(monkeypatch):
    """A fake time for module_utils.common (wait_until); action/conftest.py extends it to the action plugin.

    No action plugin is imported here: ``ansible-test units`` runs the modules' and module_utils' tests with only
    ``ansible.module_utils`` importable, as a module runs on a target host."""
    fake = FakeClock()
    monkeypatch.setattr(common, "time", fake)
    return fake


@pytest.fixture
def http_server():
    server = LocalServer()
    yield server
    server.close()

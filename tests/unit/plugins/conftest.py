"""Fixtures for the collection's unit tests: modules run in-process against moto, errors injected.

* ``run_module(module, args, check_mode=..., diff=...)`` runs a module's ``main()`` the way
  Ansible does (args through ``patch_module_args``, the real ``exit_json``/``fail_json``) and
  returns the JSON result it printed; a failure has ``failed: true``.
* ``aws`` gives a test fresh state in moto's in-process ``mock_aws`` (no network) and routes every boto3 call through
  :class:`FakeAws`, which records calls, injects errors (throttling, AccessDenied, 5xx) and
  fills the few gaps of moto 5.2.5 that these modules meet with the offline emulator's own shim
  code (``localstack/dagster_ecs_emulator/compat/``). Retry back-off sleeps are recorded, not slept.
* ``clock`` replaces the time of ``module_utils.common.wait_until`` and of the stack_health action with a fake one.
* ``http_server`` is a tiny HTTP server on 127.0.0.1 (a free port) answering from a route table.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import botocore.session
import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.dagster_ecs.fargate.plugins.action import stack_health as stack_health_action
from ansible_collections.dagster_ecs.fargate.plugins.module_utils import common
from botocore.client import BaseClient
from moto import mock_aws
from moto.core.base_backend import BackendDict

from unit.plugins.harness import REGION, FakeAws, FakeClock, LocalServer, run_module


@pytest.fixture(autouse=True, scope="session")
def shared_botocore_loader():
    """One botocore data loader for every session: each module run creates boto3 sessions, and each
    new loader parses the service models again (most of these tests' CPU time). Read-only, so sharing
    changes nothing else."""
    loaders = {}
    original = botocore.session.create_loader

    def create_loader(search_path_string=None):
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = create_loader
    yield
    botocore.session.create_loader = original


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
    """One fake time for module_utils.common (wait_until) and the stack_health action plugin's loop."""
    fake = FakeClock()
    monkeypatch.setattr(common, "time", fake)
    monkeypatch.setattr(stack_health_action, "time", fake)
    return fake


@pytest.fixture
def http_server():
    server = LocalServer()
    yield server
    server.close()

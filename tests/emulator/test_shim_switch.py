"""The emulator's shim switch (server.ShimSwitch): one running emulator served without chosen shims, and back.

test_compat.py uses it to run every scenario without its shim on one emulator; here it is driven in-process
through werkzeug's test client, and once over HTTP on an emulator started with ``--disable-shim``.
"""

from __future__ import annotations

import json

import pytest
from dagster_ecs_emulator import patches
from dagster_ecs_emulator.compat import SHIMS
from dagster_ecs_emulator.server import HEALTH_PATH, SHIMS_PATH, ShimSwitch
from support.emulator import spawn_emulator
from support.net import request
from werkzeug.test import Client

EVERY = sorted(shim.name for shim in SHIMS)
LIFECYCLE = "ecs-task-lifecycle"  # a shim with patches of moto's model and an endpoint of its own


@pytest.fixture
def client():
    yield Client(ShimSwitch())
    patches.uninstall()  # moto as shipped for the tests after this one


def health(client) -> list[str]:
    return json.loads(client.get(HEALTH_PATH).get_data())["shims"]


def test_starts_with_every_shim_and_says_so(client):
    answer = client.get(SHIMS_PATH)
    assert answer.status_code == 200
    assert json.loads(answer.get_data()) == {"active": EVERY, "disabled": []}
    assert health(client) == EVERY


def test_a_disabled_shim_is_gone_with_its_patches_and_comes_back(client):
    patched = {patch.key for shim in SHIMS if shim.name == LIFECYCLE for patch in shim.patches()}
    assert patched <= set(patches.installed())
    answer = client.put(SHIMS_PATH, json={"disabled": [LIFECYCLE]})
    assert answer.status_code == 200, answer.get_data()
    assert json.loads(answer.get_data()) == {"active": [n for n in EVERY if n != LIFECYCLE], "disabled": [LIFECYCLE]}
    assert LIFECYCLE not in health(client)
    assert not patched & set(patches.installed()), "the disabled shim's patches of moto are put back"
    assert client.put(SHIMS_PATH, json={"disabled": []}).status_code == 200
    assert health(client) == EVERY and patched <= set(patches.installed())


@pytest.mark.parametrize(
    "body",
    [{"disabled": ["no-such-shim"]}, {"disabled": "ecs-task-lifecycle"}, ["ecs-task-lifecycle"], {}],
    ids=["unknown name", "not a list", "not an object", "no list"],
)
def test_a_bad_request_is_refused_and_changes_nothing(client, body):
    client.put(SHIMS_PATH, json={"disabled": [LIFECYCLE]})
    answer = client.put(SHIMS_PATH, json=body)
    assert answer.status_code == 400
    assert "error" in json.loads(answer.get_data())
    assert json.loads(client.get(SHIMS_PATH).get_data())["disabled"] == [LIFECYCLE]


def test_other_methods_are_refused(client):
    assert client.delete(SHIMS_PATH).status_code == 405


def test_an_emulator_started_without_a_shim_serves_the_switch(tmp_path):
    emulator = spawn_emulator(tmp_path, [LIFECYCLE])
    try:
        status, body = request(f"{emulator.endpoint}{SHIMS_PATH}")
        assert status == 200 and json.loads(body)["disabled"] == [LIFECYCLE]
        status, body = request(f"{emulator.endpoint}{SHIMS_PATH}", data=b'{"disabled": []}', method="PUT")
        assert status == 200 and json.loads(body) == {"active": EVERY, "disabled": []}
        status, body = request(f"{emulator.endpoint}{HEALTH_PATH}")
        assert json.loads(body)["shims"] == EVERY
    finally:
        emulator.stop()

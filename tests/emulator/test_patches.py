"""The emulator's changes to moto's own code (patches.py): installed by build_app, reversible."""

from __future__ import annotations

import pytest
from dagster_ecs_emulator import patches
from dagster_ecs_emulator.compat import SHIMS
from dagster_ecs_emulator.server import build_app


def _moto_attributes():
    """What moto's classes hold now at every attribute a shim patches."""
    wanted = [patch.key for shim in SHIMS for patch in shim.patches()]
    return {key: key[0].__dict__.get(key[1], "<absent>") for key in wanted}


@pytest.fixture
def pristine():
    """moto as shipped, before and after the test."""
    patches.uninstall()
    yield _moto_attributes()
    patches.uninstall()


def test_uninstall_restores_motos_originals(pristine):
    build_app()
    patched = _moto_attributes()
    assert all(patched[key] is not original for key, original in pristine.items()), "every patch is installed"
    assert sorted(patches.installed(), key=str) == sorted(pristine, key=str)
    patches.uninstall()
    assert patches.installed() == []
    restored = _moto_attributes()
    assert all(restored[key] is original for key, original in pristine.items())


def test_an_inherited_attribute_is_removed_again(pristine):
    from moto.ecs.models import Task

    build_app()
    assert Task.__dict__["advance"](object()) is None  # the runtime reports the state, never a timer
    patches.uninstall()
    assert Task.__dict__.get("advance", "<absent>") == pristine[(Task, "advance")]


def test_build_app_installs_exactly_the_active_shims_patches(pristine):
    lifecycle = next(shim for shim in SHIMS if shim.name == "ecs-task-lifecycle")
    build_app(["ecs-task-lifecycle"])
    lifecycle_keys = {patch.key for patch in lifecycle.patches()}
    assert lifecycle_keys and not lifecycle_keys & set(patches.installed())
    assert _moto_attributes() != pristine  # the other shims' patches are in
    build_app()
    build_app()  # once per attribute, however often the app is built
    assert lifecycle_keys <= set(patches.installed())
    assert len(patches.installed()) == len(set(patches.installed()))

"""The ecosystem's own gates, part of `make test`: ansible-lint (production profile), yamllint, ruff, hadolint."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.paths import BIN, ROOT

pytestmark = pytest.mark.slow  # ansible-lint alone takes minutes


def run(*command):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_ansible_lint_production_profile():
    result = run(str(BIN / "ansible-lint"), "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_yamllint():
    result = run(str(BIN / "yamllint"), "-s", ".")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(args):
    result = run(str(BIN / "ruff"), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_dockerfile():
    result = run(str(BIN / "hadolint"), "container/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr

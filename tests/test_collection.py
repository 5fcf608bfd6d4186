"""The collection is one you could publish: it builds, installs from its tarball, documents every
plugin, carries its licence and its unit tests (test_coverage.py runs them, and checks that
`ansible-test units` finds them), and its changelog names every plugin it ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COLLECTION = ROOT / "collections" / "ansible_collections" / "dagster_ecs" / "fargate"
GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
TESTS = sorted(p.stem for p in (COLLECTION / "plugins" / "test").glob("*.py") if p.stem != "__init__")


def run(*command, cwd=ROOT, **env):
    # Outside the repository, so its ansible.cfg (collections_path = ./collections) is not read.
    environ = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1", **env)
    environ.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = run(str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("*.tar.gz")
    return built


def test_the_tarball_carries_the_licence_and_the_changelog(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert {"COPYING", "changelogs/changelog.yaml", "changelogs/config.yaml", "meta/runtime.yml"} <= names
    assert "GNU GENERAL PUBLIC LICENSE" in (COLLECTION / "COPYING").read_text()[:200]
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]
    assert not any(name.startswith(("tests/output", ".")) or name.endswith(".pyc") for name in names), names
    assert {f"plugins/modules/{module}.py" for module in MODULES} <= names
    # Its unit tests ship with it, as amazon.aws's do (ansible-test units runs them from an installed copy too).
    assert {f"tests/unit/plugins/modules/test_{module}.py" for module in MODULES} <= names
    assert {"tests/unit/plugins/conftest.py", "tests/unit/plugins/harness.py"} <= names


def test_installed_from_the_tarball_every_module_is_documented(tarball, tmp_path):
    """What a user gets with ``ansible-galaxy collection install``: each module's documentation loads."""
    target = tmp_path / "collections"
    # --no-deps: Galaxy is not reachable; amazon.aws and community.aws come with the ansible package.
    result = run(
        str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(target), str(tarball), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "ansible_collections" / "dagster_ecs" / "fargate" / "COPYING").is_file()
    listed = run(
        str(BIN / "ansible-doc"), "--list", "--json", "-t", "module", FQCN,
        cwd=tmp_path, ANSIBLE_COLLECTIONS_PATH=str(target),
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(listed.stdout)) == [f"{FQCN}.{module}" for module in MODULES]
    docs = run(
        str(BIN / "ansible-doc"), "--json", "-t", "module", *(f"{FQCN}.{module}" for module in MODULES),
        cwd=tmp_path, ANSIBLE_COLLECTIONS_PATH=str(target),
    )  # fmt: skip
    assert docs.returncode == 0, docs.stderr
    assert all(entry["doc"]["short_description"] for entry in json.loads(docs.stdout).values())


def test_the_changelog_names_every_plugin():
    changelog = yaml.safe_load((COLLECTION / "changelogs" / "changelog.yaml").read_text())
    modules, tests = [], []
    for release in changelog["releases"].values():
        modules += [entry["name"] for entry in release.get("modules", [])]
        tests += [entry["name"] for entry in release.get("plugins", {}).get("test", [])]
    assert sorted(modules) == MODULES
    assert sorted(tests) == TESTS
    assert GALAXY["version"] in changelog["releases"]


@pytest.mark.parametrize("command", [["lint"], ["lint-changelog-yaml", "changelogs/changelog.yaml"]])
def test_antsibull_changelog_accepts_the_changelog_and_its_fragments(command):
    result = run(str(BIN / "antsibull-changelog"), *command, cwd=COLLECTION)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_readme_lists_every_module():
    readme = (COLLECTION / "README.md").read_text()
    for module in MODULES:
        assert f"`{FQCN}.{module}`" in readme, f"the collection's README.md does not list {module}"

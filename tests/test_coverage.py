"""Line coverage of the collection's Python (plugins/**) by its unit tests: at least 90 % (`make coverage`).

The collection's unit tests (its tests/unit/) run here, once per `make test`, in a pytest of their own under
coverage ([tool.coverage] in pyproject.toml sets the source and fail_under), so that the figure does not depend on
which other tests a `make test` selects; when this file is selected, the root pytest does not run them beside it
(tests/conftest.py, run_once_under_coverage).

Meanwhile `ansible-test units --collect-only` (tests/support/ansible_units.py) must find exactly the tests that run
here: they are the collection's, and `ansible-test units` from the collection runs them too (all of them:
`python tests/support/ansible_units.py`, about a minute on 2 CPUs). Collected there, not run a second time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from xml.etree import ElementTree

import pytest
from support.paths import ROOT
from support.playbook import run_python

pytestmark = pytest.mark.slow

COLLECTION = "collections/ansible_collections/dagster_ecs/fargate"
UNIT_TESTS = [f"{COLLECTION}/tests/unit"]


@pytest.fixture(scope="module")
def unit_run(tmp_path_factory):
    """The unit tests under coverage, and ansible-test collecting them beside that run (another process)."""
    junit = tmp_path_factory.mktemp("coverage") / "junit.xml"
    ansible_test = subprocess.Popen(
        [sys.executable, "tests/support/ansible_units.py", "--collect-only"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        result = run_python(
            *("-m", "pytest", *UNIT_TESTS, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"),
            *("--cov", "--cov-report=term-missing:skip-covered", f"--junitxml={junit}"),
            timeout=900,
        )
        collected, _ = ansible_test.communicate(timeout=600)
    finally:
        if ansible_test.poll() is None:
            ansible_test.kill()
            ansible_test.wait()
    return result, junit, ansible_test.returncode, collected


def test_collection_line_coverage_is_at_least_90_percent(unit_run):
    result, _junit, _code, _collected = unit_run
    assert result.returncode == 0, result.stdout[-6000:]
    total = re.search(r"^TOTAL\s+\d+\s+\d+\s+(\d+(?:\.\d+)?)%", result.stdout, re.M)
    assert total and float(total.group(1)) >= 90, result.stdout[-3000:]
    print(result.stdout[result.stdout.find("coverage:") :])


def ran(junit) -> list[str]:
    """The tests of the coverage run, as ``tests/unit/<path>.py::<name>`` (relative to the collection)."""
    prefix = COLLECTION.replace("/", ".") + "."
    return [
        f"{case.get('classname').removeprefix(prefix).replace('.', '/')}.py::{case.get('name')}"
        for case in ElementTree.parse(junit).iter("testcase")  # noqa: S314 (the report our own pytest wrote)
    ]


def ansible_test_collected(output: str) -> list[str]:
    """The tests in ``ansible-test units --collect-only``'s output (pytest's tree of <Dir>, <Package>, <Module>,
    <Function>, two spaces a level; the first <Dir> is the collection's), as ``tests/unit/<path>.py::<name>``."""
    ids, stack = [], []
    for line in output.splitlines():
        node = re.fullmatch(r"( *)<(Dir|Package|Module|Class|Function) (.+)>", line)
        if not node:
            continue
        del stack[len(node[1]) // 2 :]
        if node[2] == "Function":
            path = "/".join(name for kind, name in stack[1:] if kind != "Class")
            ids.append("::".join([path, *(name for kind, name in stack if kind == "Class"), node[3]]))
        else:
            stack.append((node[2], node[3]))
    return ids


def test_ansible_test_units_collects_the_tests_that_ran(unit_run):
    """In its three pytest runs (modules, module_utils, controller), with its import rules: a module's tests see
    only ``ansible.module_utils`` of Ansible, as a module on a target host does."""
    _result, junit, code, collected = unit_run
    assert code == 0, collected[-6000:]
    for context in ("modules", "module_utils", "controller"):
        assert f"Unit test {context} with Python" in collected, collected[-3000:]
    expected = ran(junit)
    assert expected, junit.read_text()[-3000:]
    assert sorted(ansible_test_collected(collected)) == sorted(expected)

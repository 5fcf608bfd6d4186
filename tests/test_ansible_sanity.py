"""`ansible-test sanity` on the dagster_ecs.fargate collection, every default test, 0 errors.

tests/support/ansible_sanity.py does the set-up (its docstring says what and why). The first run on a machine builds
ansible-test's sanity virtual environments from PyPI (a few minutes); later runs reuse them (about 75 s, most of
it pylint).
"""

from __future__ import annotations

import pytest
from support.playbook import run_python

pytestmark = pytest.mark.slow


def test_ansible_test_sanity():
    result = run_python("tests/support/ansible_sanity.py", timeout=1500)
    # ansible-test prints each finding as an ERROR line; pip's download progress is left out of the message.
    findings = [line for line in result.stdout.splitlines() if line.startswith(("ERROR", "FATAL"))]
    assert result.returncode == 0, "\n".join(findings) + "\n--- output tail ---\n" + result.stdout[-6000:]

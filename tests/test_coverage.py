"""Line coverage of the collection's Python (plugins/**) by its unit tests: at least 90 % (`make coverage`).

The unit tests of the modules, module_utils and plugins run again here, in a pytest of their own under
coverage ([tool.coverage] in pyproject.toml sets the source and fail_under), so that the figure does not
depend on which other tests a `make test` selects.
"""

from __future__ import annotations

import re

import pytest
from support.playbook import run_python

pytestmark = pytest.mark.slow

UNIT_TESTS = ["tests/unit/plugins", "tests/unit/test_tagged.py", "tests/unit/test_taskdef.py"]


def test_collection_line_coverage_is_at_least_90_percent():
    result = run_python(
        *("-m", "pytest", *UNIT_TESTS, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"),
        *("--cov", "--cov-report=term-missing:skip-covered"),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    total = re.search(r"^TOTAL\s+\d+\s+\d+\s+(\d+(?:\.\d+)?)%", result.stdout, re.M)
    assert total and float(total.group(1)) >= 90, result.stdout[-3000:]
    print(result.stdout[result.stdout.find("coverage:") :])

"""Run ``ansible-test units`` on the dagster_ecs.fargate collection, offline (no Galaxy, no PyPI).

python tests/support/ansible_units.py                   # every unit test of the collection (tests/unit/)
python tests/support/ansible_units.py --collect-only    # extra arguments go to ansible-test units

What ``ansible-test units --local`` needs, it gets here:

- The collection inside an ``ansible_collections/<namespace>/<name>`` tree, with the collections it depends on
  (amazon.aws, community.aws) beside it: the temporary tree ``tests/support/ansible_sanity.py`` builds (a copy of
  ours, links to the ones the ``ansible`` package installed), which also keeps ``tests/output`` out of the checkout.
- Python packages the tests import (pytest, pytest-xdist, moto, boto3, and the repository's dagster-ecs-emulator and
  dagster-ecs-container): this venv's. ``--requirements`` is not passed: it would install ansible-test's pins from
  PyPI.
- A HOME of its own (a temporary directory), so nothing is read from or written to the user's ``~/.ansible``.

ansible-test runs the tests in three pytest runs (modules, module_utils, controller), each on pytest-xdist workers and
each test in a fork of its own; the exit status is ansible-test's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ansible_sanity import BIN, PYTHON_VERSION, build_tree


def main(argv: list[str]) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="ansible-units-home-") as home,
        tempfile.TemporaryDirectory(prefix="ansible-units-tree-") as scratch,
    ):
        collection = build_tree(Path(scratch))
        env = dict(os.environ, HOME=home, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
        command = [str(BIN / "ansible-test"), "units", "--local", "--python", PYTHON_VERSION, "--color", "no"]
        print(f"ansible_units: HOME={home} cwd={collection}\n$ {' '.join(command + argv)}", flush=True)
        return subprocess.run(command + argv, cwd=collection, env=env, stdin=subprocess.DEVNULL, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run ``ansible-test sanity`` on the dagster_ecs.fargate collection, without Galaxy or ci-files.testing.ansible.com.

python tests/support/ansible_sanity.py                  # every sanity test (tests/test_ansible_sanity.py runs this)
python tests/support/ansible_sanity.py --test pylint    # extra arguments go to ansible-test sanity

What it sets up, so that it works on a fresh clone with no stdin and an empty HOME:

- A HOME of its own for ansible-test (``.state/ansible-test``; a short temporary path if that one is too long
  for the shebangs of the virtual environments, see ``_SHEBANG_MAX``). ansible-test keeps its sanity virtual
  environments and its pip bootstrap script under ``~/.ansible/test``; nothing outside that directory is
  written, and the second run reuses the environments (they are only re-created when ansible-test's pinned
  requirements change).
- The pip bootstrap script: ansible-test downloads ``get-pip.py`` from ci-files.testing.ansible.com unless
  ``~/.ansible/test/cache/get_pip_<version>.py`` exists. We put a small script there that installs the pip
  ansible-test asks for with the pip wheel bundled in the standard library's ``ensurepip`` (or, without one,
  with the pip of the Python running this script). The packages the sanity tests need (pylint, voluptuous,
  yamllint, ...) come from PyPI, at the versions ansible-test pins.
- A collection tree: ansible-test finds the collections ours depends on (amazon.aws, community.aws) only
  beside it, in the same ``ansible_collections`` directory. They are installed in the venv by the ``ansible``
  package, so the run uses a temporary ``ansible_collections`` with a copy of our collection and symlinks to
  those. The copy also keeps ansible-test's ``tests/output`` out of the working tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = ROOT / "collections" / "ansible_collections" / "dagster_ecs" / "fargate"
STATE_HOME = ROOT / ".state" / "ansible-test"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# Linux reads at most 127 characters of a shebang; entry points in the sanity virtual environments
# start with `#!<home>/.ansible/test/venv/sanity.<test>/<python>/<hash>/bin/python`.
_SHEBANG_MAX = 127
_LONGEST_VENV_PYTHON = f"/.ansible/test/venv/sanity.integration-aliases/{PYTHON_VERSION}/0123abcd/bin/python"
# What ansible-test leaves out of a collection that is not a git checkout (UnversionedSource).
_NOT_CONTENT = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc", "*.pyo", "*.retry")

GET_PIP = '''\
"""Stand-in for get-pip.py, written by tests/support/ansible_sanity.py: ci-files.testing.ansible.com is not reachable.

ansible-test runs it with the new virtual environment's Python, as
``python get_pip.py --disable-pip-version-check pip==X.Y [--no-setuptools] [--no-wheel]``.
"""

import glob
import os
import subprocess
import sys

# get-pip.py's own options; pip itself does not know them (and nothing here installs setuptools or wheel).
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
try:
    import ensurepip

    wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))
except ImportError:
    wheels = []
if wheels:
    # A pip wheel runs from its path: the way ensurepip itself installs pip.
    command = [sys.executable, os.path.join(wheels[-1], "pip"), "install"] + args
elif os.environ.get("ANSIBLE_SANITY_PIP_PYTHON"):
    # No bundled wheel (a distribution Python without ensurepip): the runner's pip installs into this Python.
    command = [os.environ["ANSIBLE_SANITY_PIP_PYTHON"], "-m", "pip", "--python", sys.executable, "install"] + args
else:
    sys.exit("get_pip stand-in: no pip wheel in ensurepip and ANSIBLE_SANITY_PIP_PYTHON is not set")
sys.exit(subprocess.call(command))
'''


def ansible_test_home() -> Path:
    """The HOME ansible-test runs with: the repository's .state, or a short path when that one is too long."""
    override = os.environ.get("ANSIBLE_SANITY_HOME")
    if override:
        return Path(override).resolve()
    if len("#!") + len(str(STATE_HOME)) + len(_LONGEST_VENV_PYTHON) <= _SHEBANG_MAX:
        return STATE_HOME
    return Path(tempfile.gettempdir()) / f"ansible-sanity-home-{os.getuid()}"


def required_pip_versions() -> set[str]:
    """The pip versions ansible-test bootstraps into its virtual environments (24.2 in ansible-core 2.19)."""
    from ansible_test._internal.python_requirements import get_venv_packages

    return {get_venv_packages(types.SimpleNamespace(version=PYTHON_VERSION))["pip"]}


def seed_get_pip(home: Path) -> None:
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for version in required_pip_versions():
        script = cache / f"get_pip_{version.replace('.', '_')}.py"
        if not script.is_file() or script.read_text() != GET_PIP:
            partial = script.with_suffix(".py.partial")
            partial.write_text(GET_PIP)
            partial.replace(script)
        # A failed download of the real script leaves this behind.
        (cache / f"{script.name}.download").unlink(missing_ok=True)


def installed_collection(name: str) -> Path:
    namespace, collection = name.split(".")
    for entry in sys.path:
        candidate = Path(entry or ".") / "ansible_collections" / namespace / collection
        if (candidate / "MANIFEST.json").is_file() or (candidate / "galaxy.yml").is_file():
            return candidate.resolve()
    raise SystemExit(f"ansible_sanity: collection {name} is not installed in {sys.prefix} (pip install ansible)")


def dependencies(galaxy: dict) -> dict[str, Path]:
    """The collections ours depends on, and theirs, as installed in this Python's site-packages."""
    found: dict[str, Path] = {}
    pending = list((galaxy.get("dependencies") or {}).keys())
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = path = installed_collection(name)
        manifest = path / "MANIFEST.json"
        if manifest.is_file():
            pending += list(json.loads(manifest.read_text())["collection_info"].get("dependencies") or {})
    return found


def build_tree(parent: Path) -> Path:
    """A temporary ansible_collections with a copy of our collection and links to its dependencies."""
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    ours = parent / "ansible_collections" / galaxy["namespace"] / galaxy["name"]

    def ignore(directory, names):
        skipped = set(_NOT_CONTENT(directory, names))
        if Path(directory) == COLLECTION / "tests":
            skipped.add("output")
        return skipped

    shutil.copytree(COLLECTION, ours, ignore=ignore, symlinks=True)
    for name, path in dependencies(galaxy).items():
        link = parent / "ansible_collections" / Path(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path, target_is_directory=True)
    return ours


@contextlib.contextmanager
def locked(home: Path):
    """One run at a time per HOME: ansible-test deletes a virtual environment it finds half-built."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str]) -> int:
    home = ansible_test_home()
    with locked(home), tempfile.TemporaryDirectory(prefix="ansible-sanity-tree-") as scratch:
        seed_get_pip(home)
        collection = build_tree(Path(scratch))
        env = dict(os.environ)
        env.update(
            HOME=str(home),
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            ANSIBLE_SANITY_PIP_PYTHON=sys.executable,
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            NO_COLOR="1",
        )
        command = [str(BIN / "ansible-test"), "sanity", "--local", "--python", PYTHON_VERSION, "--color", "no"]
        print(f"ansible_sanity: HOME={home} cwd={collection}\n$ {' '.join(command + argv)}", flush=True)
        return subprocess.run(command + argv, cwd=collection, env=env, stdin=subprocess.DEVNULL, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the DAG modules show Ansible: the --diff of a publish or a rollback.

The manifest format, and what a publish writes, are defined once in the container package
(``dagster_ecs_container.manifest`` and ``dagster_ecs_container.plan``), which the containers' sync
also uses; the validation is ``dagster_ecs_container.inspect.run``.
"""

from __future__ import annotations


def listing(files):
    """A manifest's files as diff-friendly text: one ``path  sha256[:12]  size`` line each."""
    return "".join(f"{path}  {entry.sha256[:12]}  {entry.size}\n" for path, entry in sorted((files or {}).items()))


def packages(manifest):
    """A manifest's dependency layers as diff-friendly text: one ``requires name==version`` line each."""
    deps = manifest.dependencies if manifest else None
    return "".join(f"requires {package}\n" for package in (deps.packages() if deps else ()))


def diff(before, after):
    """The ``diff`` of replacing the live manifest ``before`` (None: nothing published) with ``after``: its files,
    then the packages its dependency layers install (added, removed and changed ones show as lines)."""
    return {
        "before_header": f"{before.version if before else '(nothing published)'}",
        "after_header": after.version,
        "before": listing(before.files if before else {}) + packages(before),
        "after": listing(after.files) + packages(after),
    }

# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan DAG publishes (used by the dag_publish module).

The manifest format itself is defined once, in ``dagster_ecs_container.manifest``, which the
container's sync also uses; this module only compares manifests (the validation is
``dagster_ecs_container.inspect.run``).
"""

from __future__ import annotations


def plan(current_files, desired_files):
    """Compare two ``{path: FileEntry}`` maps. Returns added, changed and removed paths (sorted)."""
    current_files = current_files or {}
    added = sorted(p for p in desired_files if p not in current_files)
    changed = sorted(
        p for p in desired_files if p in current_files and current_files[p].sha256 != desired_files[p].sha256
    )
    removed = sorted(p for p in current_files if p not in desired_files)
    return added, changed, removed


def objects_to_upload(current_files, desired_files):
    """Hashes of the desired files that the current version does not reference (each uploaded once)."""
    have = {entry.sha256 for entry in (current_files or {}).values()}
    return sorted({entry.sha256 for entry in desired_files.values()} - have)


def listing(files):
    """A manifest's files as diff-friendly text: one ``path  sha256[:12]  size`` line each."""
    return "".join(f"{path}  {entry.sha256[:12]}  {entry.size}\n" for path, entry in sorted((files or {}).items()))


def prune_plan(history, live_version, keep):
    """Which history manifests to delete: the oldest beyond ``keep``, never the live one.

    ``history`` is a list of ``(version, last_modified)``.
    """
    ordered = sorted(history, key=lambda item: item[1], reverse=True)
    kept = [version for version, _modified in ordered[:keep]]
    if live_version and live_version not in kept:
        kept.append(live_version)
    return [version for version, _modified in ordered if version not in kept], kept


# A new bundle is built when none exists and the version has at least manifest.BUNDLE_MIN_FILES files,
# or when more than max(BUNDLE_SLACK, 10 %) of the files differ from the current bundle's.
BUNDLE_SLACK = 16


def bundle_is_stale(bundle_files, desired_files):
    """Whether so many files differ from the bundle's that a task starting cold would download many."""
    if bundle_files is None:
        return True
    differ = sum(
        1 for path, entry in desired_files.items() if getattr(bundle_files.get(path), "sha256", None) != entry.sha256
    )
    return differ > max(BUNDLE_SLACK, len(desired_files) // 10)

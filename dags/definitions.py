"""The Dagster code location: everything defined in the ``pipelines`` package.

Every module dropped into ``pipelines/`` is loaded, with its assets, asset checks, jobs,
schedules and sensors: nothing to register by hand. Publish with
``ansible-playbook site.yml --tags dags``; the running services pick the new version up
without a restart.
"""

import warnings

import dagster as dg
import pipelines

# Package autoloading is marked "preview" in Dagster 1.13; the version is pinned.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = dg.load_definitions_from_package_module(pipelines)

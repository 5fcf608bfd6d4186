"""The sidecar's two calls to the task's Dagster webserver, through its GraphQL API on loopback.

``check_webserver`` (for ``/health``): does it answer, and did every code location load?
``reload_webserver`` (for a DAG release): reload the code location from the re-pointed socket.

Not ``dagster_graphql.DagsterGraphQLClient``, although it reaches the same URL: it imports Dagster
(1 s and +50 MB of RSS in the sidecar, which imports none; the webserver task measures 378 MB of
its 450 MB goal) and reports a webserver that is not up yet as any other client error, which the
reload must tell apart (a webserver that starts loads the live version by itself).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

LOG = logging.getLogger("dagster_ecs.entrypoint")
LOCATION = "dags"  # the code location's name in workspace.yaml

WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename } } } } }
"""
RELOAD_MUTATION = """
mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on WorkspaceLocationEntry { loadStatus locationOrLoadError { __typename
  ... on PythonError { message } } } ... on PythonError { message } ... on RepositoryLocationNotFound { message } } }
"""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 3.0) -> dict:
    """One GraphQL request (POST, JSON); the decoded answer."""
    body = {"query": query, **({"variables": variables} if variables is not None else {})}
    request = urllib.request.Request(  # noqa: S310 - loopback URL built by the caller
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def check_webserver(graphql_url: str) -> tuple[bool, str]:
    """(healthy, short reason) from the webserver's view of its code locations."""
    try:
        data = graphql(graphql_url, WORKSPACE_QUERY).get("data") or {}
    except (urllib.error.URLError, OSError, ValueError):
        return False, "dagster webserver not answering"
    workspace = data.get("workspaceOrError") or {}
    if workspace.get("__typename") != "Workspace":
        return False, "workspace unavailable"
    entries = workspace.get("locationEntries") or []
    if not entries:
        return False, "no code location"
    for entry in entries:
        if entry.get("loadStatus") != "LOADED":
            return False, "code location loading"
        if (entry.get("locationOrLoadError") or {}).get("__typename") != "RepositoryLocation":
            return False, "code location failed to load"
    return True, "ok"


def reload_webserver(graphql_url: str, version: str) -> bool:
    """Reload the webserver's code location in place; True when it loaded (or the webserver is not up)."""
    started = time.monotonic()
    try:
        data = graphql(graphql_url, RELOAD_MUTATION, {"name": LOCATION}, timeout=120)
    except (urllib.error.URLError, ConnectionError) as exc:
        # Not up (starting, or restarted by supervisord): it loads the live, validated version when it starts.
        LOG.info("webserver not answering (%s); it loads DAG version %s when it starts", exc, version)
        return True
    entry = (data.get("data") or {}).get("reloadRepositoryLocation") or {}
    loaded = (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
    if loaded:
        LOG.info(
            "webserver reloaded code location %s with DAG version %s (%.1fs)",
            LOCATION,
            version,
            time.monotonic() - started,
        )
    else:
        error = (entry.get("locationOrLoadError") or entry).get("message", entry.get("__typename"))
        LOG.error("webserver could not load DAG version %s: %s", version, error)
    return loaded

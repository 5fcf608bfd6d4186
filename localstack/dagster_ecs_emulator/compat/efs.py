"""EFS (moto's ``efs``)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote

from ..wsgi import request_body, request_json, rewrite_path
from .base import Rewrite


class EfsLegacyTags(Rewrite):
    """EFS's original tag API (DescribeTags, CreateTags, DeleteTags) is missing from moto.

    moto: implements only the successors (ListTagsForResource, TagResource, UntagResource);
    the original calls answer HTTP 404/500.
    AWS: still serves the deprecated calls, with the same bodies and ``Marker``/``NextMarker``
    paging.
    Trips: ``community.aws.efs`` (and ``efs_info``), which read and write file-system tags with them.
    moto issue: none found.
    We route each call to its successor and translate the paging keys (``Marker``/``NextMarker``
    <-> ``NextToken``).
    """

    name = "efs-legacy-tags"
    summary = "EFS DescribeTags/CreateTags/DeleteTags served by the *Resource tag calls (community.aws.efs)"
    _path = re.compile(r"^/2015-02-01/(?P<op>tags|create-tags|delete-tags)/(?P<fs>fs-[0-9a-zA-Z]+)/?$")
    _methods = {"tags": "GET", "create-tags": "POST", "delete-tags": "POST"}

    def _match(self, environ):
        found = self._path.match(environ.get("PATH_INFO", ""))
        if found and environ.get("REQUEST_METHOD") == self._methods[found.group("op")]:
            return found
        return None

    def matches(self, environ):
        return self._match(environ) is not None

    def before(self, environ):
        found = self._match(environ)
        op, fs_id = found.group("op"), found.group("fs")
        path = f"/2015-02-01/resource-tags/{fs_id}"
        if op == "tags":  # DescribeTags -> ListTagsForResource
            query = parse_qs(environ.get("QUERY_STRING", ""))
            params = []
            if "Marker" in query:
                params.append(f"NextToken={query['Marker'][0]}")
            if "MaxItems" in query:
                params.append(f"MaxResults={query['MaxItems'][0]}")
            rewrite_path(environ, path, "&".join(params))
        elif op == "create-tags":  # CreateTags -> TagResource (same body)
            request_body(environ)
            rewrite_path(environ, path)
        else:  # DeleteTags -> UntagResource (keys move from the body to the query)
            keys = request_json(environ).get("TagKeys", [])
            environ["REQUEST_METHOD"] = "DELETE"
            rewrite_path(environ, path, "&".join(f"tagKeys={quote(key)}" for key in keys))

    def after(self, exchange):
        found = self._path.match(exchange.environ["dagster_ecs.original_path"])
        if found.group("op") != "tags":
            return
        payload = exchange.json()
        result = {"Tags": payload.get("Tags", [])}
        if payload.get("NextToken"):
            result["NextMarker"] = payload["NextToken"]
        exchange.set_json(result)

"""No web page can call the emulator: the protection AWS gets from SigV4, which moto does not check.

AWS refuses a request that is not signed with the caller's secret key, so a page in the user's browser cannot
call it. moto accepts any signature, and it answers every origin's cross-origin requests (flask-cors on its
backend apps unless ``MOTO_DISABLE_GLOBAL_CORS`` is set when moto is imported). During a rehearsal, then, any
page the developer visited could read the rehearsal's secrets (``GetSecretValue``), publish DAG code to its
bucket (which the DAG sync would load and run), or switch the shims off; and, by DNS rebinding (a name of the
attacker's that resolves to 127.0.0.1), read the answers without any cross-origin request at all.

:class:`BrowserGuard`, the outermost WSGI layer, refuses (403, before anything else sees the request):

- a ``Host`` that is not loopback (``127.0.0.0/8``, ``::1``, ``localhost``, ``*.localhost``): DNS rebinding;
- a request a browser marks as sent by another site (``Sec-Fetch-Site: cross-site`` or ``same-site``);
- an ``Origin`` other than the emulator's own (``null`` included): a cross-origin fetch, its CORS preflight,
  or a form's POST.

The AWS SDKs, the CLI, Ansible's modules, Docker and the local runtime send neither ``Origin`` nor
``Sec-Fetch-*`` and address loopback, so every client of the rehearsal is served as before; so is a person who
opens moto's dashboard (``/moto-api/``) in a browser (``Sec-Fetch-Site: none``, then same-origin requests).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .wsgi import json_response

FOREIGN_FETCH_SITES = ("cross-site", "same-site")


def host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without its port (``[::1]:4566`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refusal(environ: dict) -> str | None:
    """Why a request must not be served (``None``: serve it)."""
    host = environ.get("HTTP_HOST")
    if host is not None and not is_loopback(host_name(host)):
        return f"Host {host!r} is not loopback: the emulator answers only requests addressed to 127.0.0.1"
    site = environ.get("HTTP_SEC_FETCH_SITE", "").lower()
    if site in FOREIGN_FETCH_SITES:
        return f"a request another site's page sent (Sec-Fetch-Site: {site})"
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or (host or "").lower() != parts.netloc.lower():
            return f"a request from the web page {origin!r}, not from an AWS client"
    return None


class BrowserGuard:
    """WSGI middleware: 403 with a JSON ``error`` for what :func:`refusal` names; everything else passes."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        reason = refusal(environ)
        if reason is None:
            return self.app(environ, start_response)
        return json_response(start_response, "403 Forbidden", {"error": f"refused {reason}"})

# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a URL is safe to send credentials to (used by dag_notify, stack_health and the plain_http_refusal filter),
and what is said of a redirect the modules do not follow with them.

Basic auth sends the password with every request; over plain HTTP anyone on the path reads it. HTTPS is safe, and
so is plain HTTP to this machine (loopback: 127.0.0.0/8, ::1, ``localhost``), which never leaves it. Anything else
is refused unless the caller accepts plain HTTP explicitly (the modules' ``allow_plain_http`` option, the filter's
argument, set from the inventory's ``dagster_ecs_allow_plain_http``).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost",)
# Where a module's caller accepts plain HTTP, named at the end of the refusal.
MODULE_OPT_OUT = "this module's allow_plain_http option"


def is_loopback(host):
    """True when ``host`` (a host name or an IP address, without brackets) is this machine's loopback."""
    host = (host or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False


def plain_http_refusal(url, what="the basic-auth credentials", allow_plain_http=False, opt_out=MODULE_OPT_OUT):
    """Why ``what`` must not be sent to ``url``, or None when it may be.

    Refused: an ``http://`` URL whose host is not loopback, unless ``allow_plain_http``. ``opt_out`` names, in
    parentheses after the inventory variable, where the caller's opt-out is set (none when empty).
    """
    if allow_plain_http:
        return None
    try:
        parts = urlsplit(url or "")
        host = parts.hostname
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address: where it would go is unclear
        return f"Refusing to send {what} to {url}: not a valid URL ({exc})."
    if parts.scheme != "http" or is_loopback(host):
        return None
    return (
        f"Refusing to send {what} to {url}: plain HTTP to a host that is not this machine, so the password would "
        "cross the network in clear text. Serve the load balancer over HTTPS: set loadbalancer_certificate_arn to "
        "an ACM certificate ARN (aws acm request-certificate, or import-certificate) and run site.yml, so that the "
        "URL is https://. To accept plain HTTP knowingly, set dagster_ecs_allow_plain_http: true in the inventory"
        + (f" ({opt_out})." if opt_out else ".")
    )


def is_redirect(status):
    """Whether an HTTP status is a redirect (3xx)."""
    return bool(status) and 300 <= status < 400


def not_followed(error):
    """What a module says of a redirect it did not follow (an HTTPError of a 3xx answer, opened with
    ``follow_redirects="none"``): urllib would resend every header, the credentials too, to wherever it points.
    Ansible's handler raises the error with the absolute URL it points to; urllib's own carries ``Location``."""
    headers = getattr(error, "headers", None)
    location = getattr(error, "url", None) or (headers.get("Location") if headers is not None else None)
    return f"redirect to {location or 'an unnamed location'} not followed"

# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.plain_http import plain_http_refusal as refusal_of

DOCUMENTATION = r"""
name: plain_http_refusal
short_description: Why credentials must not be sent to a URL (plain HTTP to a host that is not loopback), or nothing
version_added: 0.1.0
description:
  - The refusal message of M(dagster_ecs.fargate.dag_notify) and M(dagster_ecs.fargate.stack_health) for a URL, in the
    controller's template engine, so that a play can refuse a URL before anything is written without running a module.
  - Refused, with a message naming the URL and the fix, is an C(http://) URL whose host is not loopback (127.0.0.0/8,
    C(::1), C(localhost)), unless O(allow_plain_http). A URL that cannot be parsed is refused too.
  - HTTPS, loopback and empty URLs give an empty string.
positional: allow_plain_http
options:
  _input:
    description: The URL the credentials would be sent to.
    type: str
    required: true
  allow_plain_http:
    description: Accept plain HTTP to any host, as O(dagster_ecs.fargate.dag_notify#module:allow_plain_http) does.
    type: bool
    default: false
  what:
    description: What would be sent, as the message names it.
    type: str
    default: the basic-auth credentials
author:
  - dagster-ecs-ansible contributors
"""

EXAMPLES = r"""
- name: Refuse a plain-HTTP webserver URL before anything is published (no module run)
  ansible.builtin.assert:
    that: refusal | length == 0
    fail_msg: "{{ refusal }} Nothing was published."
    quiet: true
  vars:
    refusal: "{{ dags_notify_url | dagster_ecs.fargate.plain_http_refusal(dagster_ecs_allow_plain_http) }}"

# An empty string (HTTPS), an empty string (loopback), then "Refusing to send the token to http://10.0.0.5: plain HTTP
# to a host that is not this machine, ..."
- name: Show what the filter says of three URLs
  ansible.builtin.debug:
    msg:
      - "{{ 'https://dagster.example.com' | dagster_ecs.fargate.plain_http_refusal }}"
      - "{{ 'http://127.0.0.1:8080' | dagster_ecs.fargate.plain_http_refusal }}"
      - "{{ 'http://10.0.0.5' | dagster_ecs.fargate.plain_http_refusal(false, what='the token') }}"
"""

RETURN = r"""
_value:
  description:
    - Why O(what) must not be sent to the URL, naming the URL and how to fix it (a certificate for the load balancer,
      or C(dagster_ecs_allow_plain_http) in the inventory); an empty string when it may be sent.
  type: str
"""


def plain_http_refusal(url, allow_plain_http=False, what="the basic-auth credentials"):
    """The refusal of module_utils.plain_http (the modules' rule, written once), or "" when ``url`` is safe."""
    if url is not None and not isinstance(url, str):
        raise AnsibleFilterError(f"plain_http_refusal needs a URL (a string), got {type(url).__name__}")
    try:
        allowed = boolean(allow_plain_http, strict=True)
    except TypeError as exc:
        raise AnsibleFilterError(f"plain_http_refusal: allow_plain_http must be a boolean: {exc}") from exc
    # The inventory's dagster_ecs_allow_plain_http is the opt-out the message names; no module option to add.
    return refusal_of(url, what=what, allow_plain_http=allowed, opt_out=None) or ""


class FilterModule:
    def filters(self):
        return {"plain_http_refusal": plain_http_refusal}

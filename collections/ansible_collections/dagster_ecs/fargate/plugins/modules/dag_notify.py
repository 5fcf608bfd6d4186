#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dag_notify
short_description: Ask a Dagster webserver to take a published DAG version now, and say what it made live
version_added: 0.1.0
description:
  - Asks the webserver of this project's container (through the load balancer) to poll the DAG manifest at once
    (C(POST /_dags/sync), basic auth) and waits for its answer, instead of leaving a version that
    M(dagster_ecs.fargate.dag_publish) just published to each task's next poll.
  - The basic-auth credentials are read from Secrets Manager by the module itself; they never pass through Ansible.
  - A webserver that does not answer, or credentials that cannot be read, are not an error (the webserver takes the
    version when it starts or at its next poll); the C(error) of the result's RV(live) says why it was not
    confirmed, and an unreadable secret is also a warning.
  - A webserver that refuses the version (its definitions do not load in the image) fails the task, naming the
    rollback; the version stays published (that happened in the task before) and the webserver keeps serving the
    version it had.
  - Refuses, before any request, to send the credentials over plain HTTP to a host that is not loopback (see
    O(allow_plain_http)). In check mode that check is all it does, so a play can run it in check mode before it
    publishes anything.
  - Does not follow a redirect, which would resend the credentials to wherever it points; the C(error) of RV(live)
    names its location.
  - Project-specific, the endpoint is served by the project's container (C(dagster_ecs_container)).
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  url:
    description: Base URL of the Dagster webserver (the load balancer).
    type: str
    required: true
  secret:
    description: Secrets Manager secret (name or ARN) holding the basic-auth credentials as JSON C(username) and
      C(password).
    type: str
    required: true
  version:
    description:
      - The DAG version the webserver should serve (RV(dagster_ecs.fargate.dag_publish#module:version)).
      - Required unless in check mode (which sends nothing).
    type: str
  timeout:
    description: Seconds to wait for the webserver to stage, check and load the new version.
    type: int
    default: 60
  allow_plain_http:
    description:
      - Send the basic-auth credentials over plain HTTP to a O(url) whose host is not loopback (127.0.0.0/8, C(::1),
        C(localhost)). Off by default, the module then fails before any request, naming O(url) and the fix, since
        the password would cross the network in clear text.
      - HTTPS and loopback URLs are never refused.
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Check the webserver's URL before anything is published (sends nothing)
  dagster_ecs.fargate.dag_notify:
    url: https://dagster.example.com
    secret: dagster-ecs/basic-auth
  check_mode: true

- name: Publish the DAGs
  dagster_ecs.fargate.dag_publish:
    bucket: dagster-ecs-dags-123456789012-ap-southeast-2
    src: "{{ playbook_dir }}/../dags"
  register: published

- name: Make the new version live on the webserver now
  dagster_ecs.fargate.dag_notify:
    url: https://dagster.example.com
    secret: dagster-ecs/basic-auth
    version: "{{ published.version }}"
  when: published is changed and not ansible_check_mode
"""

RETURN = r"""
live:
  description:
    - What the webserver made live. C(confirmed) is true when it serves O(version); C(error) says why not.
    - C(version) and C(seconds) are there when the webserver answered.
    - C(stopped_first) is there when the task's memory did not hold two code servers at once, so the old one
      stopped before the new one started (a short window in which the code location reloads); it gives the figures
      the task decided from.
  returned: unless in check mode
  type: dict
  sample: {"url": "https://dagster.example.com", "confirmed": true, "version": "3f6c2a9e81d04b7c", "seconds": 3.1}
"""

import json
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, client
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.plain_http import (
    is_redirect,
    not_followed,
    plain_http_refusal,
)

# Served by the container's nginx (container/dagster_ecs_container/templates/nginx.conf, behind basic auth) and
# answered by its sidecar: poll the manifest now, then say what is live.
SYNC_PATH = "/_dags/sync"


def credentials(module, live):
    """``(username, password)`` from the secret, or None (``live["error"]`` says why, with a warning)."""
    secret = module.params["secret"]
    try:
        value = client(module, "secretsmanager").get_secret_value(aws_retry=True, SecretId=secret)
        pair = json.loads(value["SecretString"])
        return pair["username"], pair["password"]
    except BOTO_ERRORS as exc:  # the version is published: the tasks take it at their next poll
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        live["error"] = f"cannot read the basic-auth credentials {secret} ({code})"
    except (KeyError, TypeError, ValueError):
        live["error"] = f"secret {secret} is not JSON with username and password"
    module.warn(f"Not notifying the webserver: {live['error']}")
    return None


def ask(module, live, username, password):
    """POST the sync; the webserver's answer (a dict), or None when it gave none (``live["error"]`` says why)."""
    url = module.params["url"].rstrip("/") + SYNC_PATH
    try:
        response = open_url(
            url,
            method="POST",
            url_username=username,
            url_password=password,
            force_basic_auth=True,
            timeout=module.params["timeout"],
            headers={"Content-Type": "application/json"},
            # urllib would resend every header, the credentials too, to wherever a redirect points
            follow_redirects="none",
        )
        return json.loads(response.read() or b"{}")
    except HTTPError as exc:
        if is_redirect(exc.code):
            live["error"] = f"HTTP {exc.code} from {url}: {not_followed(exc)}"
            return None
        if exc.code != 409:
            live["error"] = f"HTTP {exc.code} from {url}"
            return None
        try:  # 409: the webserver answered, and refused the version
            return json.loads(exc.read() or b"{}")
        except ValueError:
            return {}
    except (URLError, OSError, ValueError) as exc:
        live["error"] = f"no answer from {url}: {exc}"
        return None


def notify(module):
    """What the webserver made live (``live``); never raises for one that cannot be reached."""
    version = module.params["version"]
    live = {"url": module.params["url"], "confirmed": False}
    pair = credentials(module, live)
    if pair is None:
        return live, False
    started = time.monotonic()
    answer = ask(module, live, *pair)
    if answer is None:
        return live, False
    live.update(
        confirmed=answer.get("version") == version,
        version=answer.get("version"),
        seconds=answer.get("seconds", round(time.monotonic() - started, 2)),
    )
    if answer.get("last_error"):
        live["error"] = answer["last_error"]
    if answer.get("stopped_first"):
        live["stopped_first"] = answer["stopped_first"]
    return live, bool(answer.get("changed"))


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            # The secret's name or ARN, not its value.
            secret=dict(type="str", required=True, no_log=False),
            version=dict(type="str"),
            timeout=dict(type="int", default=60),
            allow_plain_http=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    url = module.params["url"]
    refusal = plain_http_refusal(url, allow_plain_http=module.params["allow_plain_http"])
    if refusal:
        module.fail_json(msg=f"{refusal} Nothing was sent.", url=url)
    if module.check_mode:
        module.exit_json(changed=False)
    version = module.params["version"]
    if not version:
        module.fail_json(msg="version is required to notify the webserver (only check mode sends nothing)")
    live, changed = notify(module)
    if not live["confirmed"] and live.get("version") and live.get("error"):
        module.fail_json(
            msg=f"DAG version {version} is published, but the webserver refused it and keeps "
            f"{live['version']}: {live['error']}. Fix the DAGs and publish again, or roll back "
            "(-e dags_rollback_to=previous).",
            live=live,
        )
    module.exit_json(changed=changed, live=live)


if __name__ == "__main__":
    main()

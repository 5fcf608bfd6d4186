# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the dagster_ecs.fargate modules.

Every module talks to AWS through :func:`client`, which attaches amazon.aws's jittered
exponential backoff (throttling and transient 5xx are retried) so that calls made with
``aws_retry=True`` survive API rate limits the way the amazon.aws modules do.
"""

from __future__ import annotations

import time

try:
    from botocore.exceptions import BotoCoreError, ClientError

    BOTO_ERRORS = (BotoCoreError, ClientError)
except ImportError:  # AnsibleAWSModule reports the missing library
    BOTO_ERRORS = ()

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

# Error codes retried on top of AWSRetry's defaults (throttling, RequestLimitExceeded, 5xx).
EXTRA_RETRY_CODES = [
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "ServerException",  # ECS, ECR: "server-side issue"
    "SlowDown",  # S3: reduce the request rate
    "RequestTimeout",  # S3: the socket was not read or written in time
]


class ServedRetry(AWSRetry):
    """AWSRetry that does not retry an API the endpoint does not serve.

    An HTTP 501 answer (LocalStack Community's "not included in your current license plan" is a 501
    ``InternalFailure``) never turns into a success by waiting; retried as an ``InternalFailure`` it
    would only show after minutes of back-off.
    """

    @staticmethod
    def status_code_from_exception(error):
        if (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") == 501:
            return "NotImplemented"
        return AWSRetry.status_code_from_exception(error)


def retry_decorator(retries=10, delay=1, max_delay=30):
    """amazon.aws's jittered backoff with this collection's extra retryable codes (never for an HTTP 501)."""
    return ServedRetry.jittered_backoff(
        retries=retries, delay=delay, max_delay=max_delay, catch_extra_error_codes=EXTRA_RETRY_CODES
    )


def client(module, service, **extra_params):
    """A boto3 client whose calls retry with jittered backoff when passed ``aws_retry=True``.

    ``extra_params`` go to boto3 (e.g. ``config=botocore.config.Config(max_pool_connections=16)``).
    """
    return module.client(service, retry_decorator=retry_decorator(), **extra_params)


def paginate(aws_client, method, **kwargs):
    """Every page of ``method`` merged (``build_full_result``), retried as a whole like a single call.

    A paginator's calls do not go through the client's ``aws_retry`` wrapper; amazon.aws's
    paginated_query_with_retries restarts the listing from the first page on a retryable error.
    """
    return paginated_query_with_retries(aws_client, method, retry_decorator=retry_decorator(), **kwargs)


# tags/purge_tags as amazon.aws modules take them (documented by the amazon.aws.tags fragment).
TAG_ARGS = dict(
    tags=dict(type="dict", aliases=["resource_tags"]),
    purge_tags=dict(type="bool", default=True),
)


class Changes:
    """Accumulates whether anything changed and the before/after diff of a module run."""

    def __init__(self):
        self.changed = False
        self.diff = {"before": {}, "after": {}}

    def add(self, changed, diff=None):
        if changed:
            self.changed = True
            self.diff["before"].update((diff or {}).get("before", {}))
            self.diff["after"].update((diff or {}).get("after", {}))
        return changed


def call(module, aws_client, what, method, **kwargs):
    """``aws_client.<method>(**kwargs)`` with retries; an AWS error fails the module with "Failed to <what>"."""
    try:
        return getattr(aws_client, method)(aws_retry=True, **kwargs)
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to {what}")


def plan_tags(current, desired, purge):
    """Compare tags. Returns ``(to_set, to_remove)``; ``desired=None`` means leave tags alone."""
    if desired is None:
        return {}, []
    return compare_aws_tags(current or {}, desired, purge_tags=purge)


def apply_tags(module, current, desired, purge, set_tags, remove_tags, keep=()):
    """Converge tags with the given callables (skipped in check mode). Returns ``(changed, diff)``.

    ``keep`` lists keys never removed (e.g. a ``Name`` tag the module manages itself).
    """
    to_set, to_remove = plan_tags(current, desired, purge)
    to_remove = [key for key in to_remove if key not in keep]
    if not (to_set or to_remove):
        return False, {}
    if not module.check_mode:
        if to_remove:
            remove_tags(to_remove)
        if to_set:
            set_tags(to_set)
    after = {k: v for k, v in (current or {}).items() if k not in to_remove}
    after.update(to_set)
    return True, {"before": {"tags": current or {}}, "after": {"tags": after}}


def wait_until(module, check, timeout, delay=2, what="resource", on_timeout=None):
    """Call ``check()`` until it returns a truthy value or ``timeout`` seconds pass (then fail_json).

    ``on_timeout()``, if given, runs before the failure (e.g. to stop what was waited for); the text it
    returns is added to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout else None
            module.fail_json(msg=f"Timed out after {timeout}s waiting for {what}" + (f"; {extra}" if extra else ""))
        time.sleep(delay)


def camel_tags(tags):
    """Ansible dict -> Cloud Map / ECS style ``[{"Key": k, "Value": v}]``."""
    return [{"Key": key, "Value": value} for key, value in (tags or {}).items()]

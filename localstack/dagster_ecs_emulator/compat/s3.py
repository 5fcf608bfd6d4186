"""S3 (moto's ``s3``)."""

from __future__ import annotations

import json

from ..patches import Patch
from .base import Shim


def _policy_evaluated(evaluated):
    """``FakeBucket.get_permission`` judging the policy ``evaluated`` leaves (moto's own is not used)."""

    def get_permission(bucket, action, resource):
        from moto.iam.access_control import IAMPolicy, PermissionResult

        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        policy = evaluated(json.loads(bucket.policy))
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    return lambda _original: get_permission


class S3PolicySecureTransport(Shim):
    """moto cannot evaluate a bucket policy's ``Bool`` conditions.

    moto: its policy engine implements the ``StringEquals`` operator only and treats every other
    condition as satisfied, so a bucket policy that denies requests with
    ``aws:SecureTransport = false`` (refuse plain HTTP, as the DAG bucket's does) denies *every*
    object read and write.
    AWS: evaluates the condition; the SDKs use TLS, so the statement never applies to them.
    Trips: the DAG sync's ``GetObject`` on the TLS-only DAG bucket.
    moto issue: none found.
    The emulator stands in for AWS's HTTPS endpoints on loopback HTTP, so its object permission
    check evaluates ``Bool``/``BoolIfExists`` conditions itself, with the request context
    ``aws:SecureTransport = true``, before moto sees the policy. A patch of moto's bucket model
    (``FakeBucket.get_permission``, ``patches.py``).
    """

    name = "s3-policy-secure-transport"
    summary = "S3 bucket policies' Bool conditions evaluated, with aws:SecureTransport=true (TLS-only bucket)"
    CONTEXT = {"aws:securetransport": "true"}

    @classmethod
    def applies(cls, statement: dict) -> bool:
        """Whether the statement's Bool conditions hold in the emulator's request context."""
        for operator, pairs in (statement.get("Condition") or {}).items():
            if operator not in ("Bool", "BoolIfExists"):
                continue
            for context_key, expected in pairs.items():
                actual = cls.CONTEXT.get(context_key.lower())
                if actual is None:
                    if operator == "Bool":
                        return False
                    continue
                wanted = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
                if actual not in wanted:
                    return False
        return True

    @classmethod
    def evaluated(cls, policy: dict) -> dict:
        """The policy without the statements whose Bool conditions fail, and without those conditions."""
        statements = policy.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        kept = []
        for statement in statements:
            if not cls.applies(statement):
                continue
            statement = dict(statement)
            conditions = {
                k: v for k, v in (statement.get("Condition") or {}).items() if k not in ("Bool", "BoolIfExists")
            }
            statement.pop("Condition", None)
            if conditions:
                statement["Condition"] = conditions
            kept.append(statement)
        return dict(policy, Statement=kept)

    def patches(self):
        from moto.s3.models import FakeBucket

        return [Patch(FakeBucket, "get_permission", _policy_evaluated(self.evaluated))]

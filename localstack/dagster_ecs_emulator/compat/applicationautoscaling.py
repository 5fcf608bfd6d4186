"""Application Auto Scaling (moto's ``applicationautoscaling``).

:func:`tag_call` and :func:`remember_tags` are the tag shim's logic on plain values; the
collection's unit-test harness (its ``tests/unit/plugins/harness.py``) answers the calls it intercepts
with the same functions.
"""

from __future__ import annotations

import json

from ..wsgi import moto_scope, replace_body, request_json
from .base import Rewrite

PREFIX = "AnyScaleFrontendService."
TAG_CALLS = ("ListTagsForResource", "TagResource", "UntagResource")


def scalable_target(account: str, region: str, arn: str | None):
    """moto's scalable target with ARN ``arn``, or None."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    backend = applicationautoscaling_backends[account][region]
    for by_resource in backend.targets.values():
        for target in by_resource.values():
            if target.arn == arn:
                return target
    return None


def _tags(target) -> dict:
    """The tags kept on moto's target object: they live and die with the target."""
    return target.__dict__.setdefault("dagster_ecs_tags", {})


def remember_tags(account: str, region: str, arn: str | None, tags: dict | None) -> None:
    """RegisterScalableTarget's ``Tags``, kept on the target moto registered."""
    target = scalable_target(account, region, arn)
    if target is not None and tags:
        _tags(target).update(tags)


def tag_call(account: str, region: str, call: str, request: dict) -> dict | None:
    """Answer ListTagsForResource / TagResource / UntagResource as AWS does; None: no such target."""
    target = scalable_target(account, region, request.get("ResourceARN"))
    if target is None:
        return None
    tags = _tags(target)
    if call == "TagResource":
        tags.update(request.get("Tags") or {})
    elif call == "UntagResource":
        for key in request.get("TagKeys") or []:
            tags.pop(key, None)
    return {"Tags": dict(tags)} if call == "ListTagsForResource" else {}


def no_target_message(arn: str | None) -> str:
    return f"No scalable target {arn}"


class AppAutoscalingPolicyNames(Rewrite):
    """Application Auto Scaling ``DescribeScalingPolicies`` ignores ``PolicyNames`` in moto.

    moto: returns the service's policies whatever their names (with ``MaxResults=1``, the first),
    and matches ``ResourceId`` as a substring.
    AWS: returns the named policies of exactly that resource.
    Trips: ``community.aws.application_autoscaling_policy``, which looks its policy up with
    ``PolicyNames=[name], MaxResults=1``: the second policy of a service (memory after CPU) is
    compared with the first, found different and put again on every run.
    moto issue: none found.
    We let moto return the whole list, then apply ``PolicyNames``, an exact ``ResourceId`` match
    and ``MaxResults``.
    """

    name = "appautoscaling-policy-names"
    summary = "Application Auto Scaling DescribeScalingPolicies honours PolicyNames (application_autoscaling_policy)"

    targets = (PREFIX + "DescribeScalingPolicies",)

    def before(self, environ):
        request = request_json(environ)
        if request.get("PolicyNames"):
            request.pop("MaxResults", None)
            request.pop("NextToken", None)
            replace_body(environ, json.dumps(request).encode())

    def after(self, exchange):
        request = exchange.request_json()
        if not request.get("PolicyNames"):
            return
        payload = exchange.json()
        policies = [p for p in payload.get("ScalingPolicies", []) if p.get("PolicyName") in request["PolicyNames"]]
        if request.get("ResourceId"):
            policies = [p for p in policies if p.get("ResourceId") == request["ResourceId"]]
        if request.get("MaxResults"):
            policies = policies[: int(request["MaxResults"])]
        exchange.set_json({"ScalingPolicies": policies})


class AppAutoscalingTags(Rewrite):
    """Application Auto Scaling's tag API is missing from moto.

    moto: ignores ``Tags`` on RegisterScalableTarget and answers ListTagsForResource, TagResource
    and UntagResource with HTTP 500 (not implemented).
    AWS: tags scalable targets through all four; DeregisterScalableTarget drops the tags.
    Trips: ``dagster_ecs.fargate.appautoscaling_target``, which cannot read or converge a target's
    tags.
    moto issue: none found.
    We keep the tags on moto's target object, so they live and die with the target.
    """

    name = "appautoscaling-tags"
    summary = "Application Auto Scaling scalable-target tags (dagster_ecs.fargate.appautoscaling_target)"
    targets = tuple(PREFIX + call for call in ("RegisterScalableTarget", *TAG_CALLS))

    def respond(self, exchange):
        call = exchange.target[len(PREFIX) :]
        if call == "RegisterScalableTarget":
            return False
        request = exchange.request_json()
        answer = tag_call(*moto_scope(exchange.environ), call, request)
        if answer is None:
            exchange.answer(
                "400 Bad Request",
                {"__type": "ResourceNotFoundException", "message": no_target_message(request.get("ResourceARN"))},
            )
        else:
            exchange.answer("200 OK", answer)
        return True

    def after(self, exchange):
        tags = exchange.request_json().get("Tags")
        if tags:
            remember_tags(*moto_scope(exchange.environ), exchange.json().get("ScalableTargetARN"), tags)

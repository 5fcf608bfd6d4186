"""Compatibility layer: where moto answers differently from AWS, make it answer like AWS.

Every shim here exists because a stock amazon.aws / community.aws module misbehaves
against plain moto 5.2.5 in a way it does not against AWS. The roles are written for
AWS; the emulator is bent to match, never the other way round. Each shim:

* names the AWS API and the module that trips over the divergence;
* rewrites only the requests it matches, and only as little as needed;
* has a test in ``tests/emulator/test_compat.py`` that fails when the shim is
  disabled (``python -m dagster_ecs_emulator serve --disable-shim NAME``).

The table in ``localstack/README.md`` lists them for users.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote


@dataclass
class Exchange:
    """One buffered request/response pair a shim may inspect and rewrite."""

    environ: dict
    status: str = ""
    headers: list = field(default_factory=list)
    body: bytes = b""

    @property
    def target(self) -> str:
        """The JSON-protocol operation (``X-Amz-Target``), e.g. ``...DescribeClusters``."""
        return self.environ.get("HTTP_X_AMZ_TARGET", "")

    def json(self):
        return json.loads(self.body or b"{}")

    def set_body(self, body: bytes) -> None:
        self.body = body
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        self.headers.append(("Content-Length", str(len(body))))

    def set_json(self, payload) -> None:
        self.set_body(json.dumps(payload).encode())

    def answer(self, status: str, payload) -> None:
        """Answer with a JSON document (AWS JSON protocol)."""
        self.status = status
        self.headers = [("Content-Type", "application/x-amz-json-1.1")]
        self.set_json(payload)

    def request_json(self):
        return request_json(self.environ)

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")


def request_body(environ: dict) -> bytes:
    """Read the request body once; keep it in the environ and give moto an unread copy."""
    if "dagster_ecs.body" not in environ:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["dagster_ecs.body"] = body
    return environ["dagster_ecs.body"]


def request_json(environ: dict):
    """The JSON-protocol request body as a document (``{}`` when empty)."""
    return json.loads(request_body(environ) or b"{}")


def json_response(start_response, status: str, payload) -> list[bytes]:
    """Answer a WSGI request with ``payload`` as JSON (the emulator's own control endpoints)."""
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def rewrite_path(environ: dict, path: str, query: str = "") -> None:
    """Point the request at another path. moto reads ``RAW_URI`` as well as ``PATH_INFO``."""
    environ.setdefault("dagster_ecs.original_path", environ.get("PATH_INFO", ""))
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = f"{path}?{query}" if query else path


def replace_body(environ: dict, body: bytes) -> None:
    """Give moto a different request body."""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/[^/]+/(?P<region>[^/]+)/(?P<service>[^/]+)/")


def credential_scope(environ: dict) -> tuple[str, str, str]:
    """(access key, region, signing name) of a SigV4 ``Authorization`` header, or three empty strings."""
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (found.group("key"), found.group("region"), found.group("service")) if found else ("", "", "")


def moto_scope(environ: dict) -> tuple[str, str]:
    """(account id, region) moto files this request under, as moto itself derives them."""
    from moto.iam.models import get_account_id_from

    access_key, region, _service = credential_scope(environ)
    region = region or "us-east-1"
    account = (
        os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
    )
    return account, region


def query_action(environ: dict) -> str:
    """The ``Action`` of a query-protocol (EC2, IAM, RDS, ELBv2, STS) request, or ``""``.

    Reads a form-encoded body once, keeps it in the environ and puts an unread copy
    back in ``wsgi.input`` so moto still sees the whole request.
    """
    if "dagster_ecs.action" in environ:
        return environ["dagster_ecs.action"]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [""])[0]
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(request_body(environ).decode("utf-8", "replace")).get("Action", [""])[0]
    environ["dagster_ecs.action"] = action
    return action


class Shim:
    """Base class. Subclasses set ``name``/``summary`` and override the hooks they need."""

    name = ""
    summary = ""

    def matches(self, environ: dict) -> bool:
        raise NotImplementedError

    def install(self) -> None:
        """Called once when the emulator starts with this shim (for shims that are not request rewrites)."""

    def respond(self, exchange: Exchange) -> bool:
        """Answer the request without moto (fill ``exchange``, return True); most shims return False."""
        return False

    def before(self, environ: dict) -> None:
        """Rewrite the request in place before moto sees it."""

    def after(self, exchange: Exchange) -> None:
        """Rewrite the response in place before the client sees it."""

    def wrap(self, app):
        """Put an application of the shim's own in front of the emulator (a whole API moto lacks); default: none."""
        return app


class EfsLegacyTags(Shim):
    """EFS's original tag API (DescribeTags, CreateTags, DeleteTags) is missing from moto.

    ``community.aws.efs`` (and ``efs_info``) read and write file-system tags with these
    deprecated-but-served calls; moto implements only their successors
    (List/Tag/UntagResource), so the module fails with HTTP 404/500. We route each call to
    its successor and translate the paging keys (``Marker``/``NextMarker`` <->
    ``NextToken``). The request and response bodies otherwise have the same shape.
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
        if not exchange.ok or found.group("op") != "tags":
            return
        payload = exchange.json()
        result = {"Tags": payload.get("Tags", [])}
        if payload.get("NextToken"):
            result["NextMarker"] = payload["NextToken"]
        exchange.set_json(result)


class EcsClusterCapacityProviders(Shim):
    """ECS ``DescribeClusters`` omits ``capacityProviders`` and ``defaultCapacityProviderStrategy``.

    AWS always returns both lists (empty when unused). ``community.aws.ecs_cluster`` reads
    ``cluster["capacityProviders"]`` on a re-run and crashes with ``KeyError`` against moto.
    """

    name = "ecs-cluster-capacity-providers"
    summary = "ECS DescribeClusters always lists capacityProviders (community.aws.ecs_cluster re-run)"

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "").endswith(".DescribeClusters")

    def after(self, exchange):
        if not exchange.ok:
            return
        payload = exchange.json()
        for cluster in payload.get("clusters", []):
            cluster.setdefault("capacityProviders", [])
            cluster.setdefault("defaultCapacityProviderStrategy", [])
        exchange.set_json(payload)


class Ec2RuleDescriptionsReturn(Shim):
    """EC2 ``UpdateSecurityGroupRuleDescriptions{Ingress,Egress}`` answer without ``<return>``.

    AWS answers ``<return>true</return>``; moto answers an empty result.
    ``amazon.aws.ec2_security_group`` reads ``["Return"]`` when it only has to change a
    rule's description (e.g. describing the default egress rule) and fails with
    ``Module failed: 'Return'``.
    """

    name = "ec2-rule-descriptions-return"
    summary = "EC2 UpdateSecurityGroupRuleDescriptions* return <return>true</return> (ec2_security_group)"
    _actions = ("UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress")

    def matches(self, environ):
        return query_action(environ) in self._actions

    def after(self, exchange):
        if exchange.ok and b"<return>" not in exchange.body:
            closing = exchange.body.rfind(b"</")
            exchange.set_body(exchange.body[:closing] + b"<return>true</return>" + exchange.body[closing:])


class CloudMapListFilters(Shim):
    """Cloud Map ``ListServices`` / ``ListNamespaces`` ignore ``Filters`` in moto.

    AWS returns only the services of the namespace named by a ``NAMESPACE_ID`` filter and
    only the namespaces matching ``TYPE`` / ``NAME`` filters; moto returns everything, so
    ``dagster_ecs.fargate.cloudmap_service`` would find a same-named service of another
    namespace. We apply the filters (conditions ``EQ``, ``IN``, ``BEGINS_WITH``) to moto's answer.
    """

    name = "cloudmap-list-filters"
    summary = "Cloud Map ListServices/ListNamespaces apply Filters (dagster_ecs.fargate.cloudmap_*)"
    _targets = {
        "Route53AutoNaming_v20170314.ListServices": ("Services", {"NAMESPACE_ID": "NamespaceId"}),
        "Route53AutoNaming_v20170314.ListNamespaces": ("Namespaces", {"TYPE": "Type", "NAME": "Name"}),
    }

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "") in self._targets

    @staticmethod
    def _keep(value, condition, wanted):
        if condition == "BEGINS_WITH":
            return any(str(value).startswith(w) for w in wanted)
        return value in wanted  # EQ and IN

    def after(self, exchange):
        filters = exchange.request_json().get("Filters") or []
        if not exchange.ok or not filters:
            return
        key, fields = self._targets[exchange.target]
        payload = exchange.json()
        items = payload.get(key, [])
        for flt in filters:
            field_name = fields.get(flt.get("Name"))
            if field_name:
                condition = flt.get("Condition", "EQ")
                items = [item for item in items if self._keep(item.get(field_name), condition, flt.get("Values", []))]
        payload[key] = items
        exchange.set_json(payload)


class Elbv2AlbDefaultAttributes(Shim):
    """ELBv2 ``DescribeLoadBalancerAttributes`` omits an ALB's default attributes.

    AWS lists every attribute of an application load balancer with its default value;
    moto lists five. ``amazon.aws.elb_application_lb`` reads e.g.
    ``idle_timeout_timeout_seconds`` and fails with ``KeyError`` when it converges the idle
    timeout, HTTP/2 or header settings. We add AWS's documented defaults for any attribute
    moto did not return (attributes set through ModifyLoadBalancerAttributes are returned by
    moto and left alone).
    """

    name = "elbv2-alb-default-attributes"
    summary = "ELBv2 DescribeLoadBalancerAttributes lists an ALB's defaults (amazon.aws.elb_application_lb)"
    ALB_DEFAULTS = {
        "access_logs.s3.enabled": "false",
        "client_keep_alive.seconds": "3600",
        "connection_logs.s3.enabled": "false",
        "idle_timeout.timeout_seconds": "60",
        "routing.http.desync_mitigation_mode": "defensive",
        "routing.http.drop_invalid_header_fields.enabled": "false",
        "routing.http.preserve_host_header.enabled": "false",
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
        "routing.http.xff_client_port.enabled": "false",
        "routing.http.xff_header_processing.mode": "append",
        "routing.http2.enabled": "true",
        "waf.fail_open.enabled": "false",
    }
    _key = re.compile(rb"<Key>([^<]+)</Key>")

    def matches(self, environ):
        if query_action(environ) != "DescribeLoadBalancerAttributes":
            return False
        arn = parse_qs(request_body(environ).decode("utf-8", "replace")).get("LoadBalancerArn", [""])[0]
        return ":loadbalancer/app/" in arn

    def after(self, exchange):
        closing = exchange.body.find(b"</Attributes>")
        if not exchange.ok or closing < 0:
            return
        present = {key.decode() for key in self._key.findall(exchange.body)}
        missing = "".join(
            f"<member><Key>{key}</Key><Value>{value}</Value></member>"
            for key, value in self.ALB_DEFAULTS.items()
            if key not in present
        ).encode()
        exchange.set_body(exchange.body[:closing] + missing + exchange.body[closing:])


class EcsEmptyTagLists(Shim):
    """ECS omits empty ``tags`` lists where AWS returns ``[]``.

    AWS answers ``ListTagsForResource`` with ``{"tags": []}`` for an untagged resource and
    includes ``tags`` in ``DescribeServices`` when ``include=["TAGS"]``. moto leaves the key
    out; ``community.aws.ecs_tag`` reads ``["tags"]`` and fails with ``KeyError: 'tags'``
    when it first tags a cluster.
    """

    name = "ecs-empty-tag-lists"
    summary = "ECS ListTagsForResource/DescribeServices always carry a tags list (community.aws.ecs_tag)"
    _prefix = "AmazonEC2ContainerServiceV20141113."

    def matches(self, environ):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return target in (self._prefix + "ListTagsForResource", self._prefix + "DescribeServices")

    def after(self, exchange):
        if not exchange.ok:
            return
        payload = exchange.json()
        if exchange.target.endswith("ListTagsForResource"):
            payload.setdefault("tags", [])
        elif "TAGS" in (exchange.request_json().get("include") or []):
            for service in payload.get("services", []):
                service.setdefault("tags", [])
        exchange.set_json(payload)


class RdsGp3Baseline(Shim):
    """RDS omits a gp3 instance's ``Iops`` and ``StorageThroughput``.

    AWS reports the gp3 baseline for every gp3 instance (PostgreSQL below 400 GiB: 3000
    IOPS and 125 MiB/s; from 400 GiB: 12000 and 500). ``amazon.aws.rds_instance`` reads
    ``instance["StorageThroughput"]`` when it converges an existing gp3 instance and fails
    with ``KeyError`` against moto. We add the baseline where moto left it out.
    """

    name = "rds-gp3-baseline"
    summary = "RDS gp3 instances report baseline Iops/StorageThroughput (amazon.aws.rds_instance re-run)"
    _actions = ("DescribeDBInstances", "CreateDBInstance", "ModifyDBInstance")
    _instance = re.compile(rb"<DBInstance>.*?</DBInstance>", re.S)
    _storage = re.compile(rb"<AllocatedStorage>(\d+)</AllocatedStorage>")

    def matches(self, environ):
        return query_action(environ) in self._actions

    def _fill(self, found):
        block = found.group(0)
        if b"<StorageType>gp3</StorageType>" not in block:
            return block
        size = self._storage.search(block)
        large = size is not None and int(size.group(1)) >= 400
        extra = b""
        if b"<Iops>" not in block:
            extra += b"<Iops>12000</Iops>" if large else b"<Iops>3000</Iops>"
        if b"<StorageThroughput>" not in block:
            extra += (
                b"<StorageThroughput>500</StorageThroughput>"
                if large
                else b"<StorageThroughput>125</StorageThroughput>"
            )
        return block.replace(b"</DBInstance>", extra + b"</DBInstance>") if extra else block

    def after(self, exchange):
        if exchange.ok:
            exchange.set_body(self._instance.sub(self._fill, exchange.body))


class AppAutoscalingPolicyNames(Shim):
    """Application Auto Scaling ``DescribeScalingPolicies`` ignores ``PolicyNames`` in moto.

    ``community.aws.application_autoscaling_policy`` looks its policy up with
    ``PolicyNames=[name], MaxResults=1``; moto returns the first policy of the service
    whatever its name, so the second policy of a service (memory after CPU) is compared with
    the first, found different and put again on every run. We let moto return the whole
    list, then apply ``PolicyNames``, an exact ``ResourceId`` match (moto matches substrings)
    and ``MaxResults``.
    """

    name = "appautoscaling-policy-names"
    summary = "Application Auto Scaling DescribeScalingPolicies honours PolicyNames (application_autoscaling_policy)"

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "") == "AnyScaleFrontendService.DescribeScalingPolicies"

    def before(self, environ):
        request = request_json(environ)
        if request.get("PolicyNames"):
            request.pop("MaxResults", None)
            request.pop("NextToken", None)
            replace_body(environ, json.dumps(request).encode())

    def after(self, exchange):
        request = exchange.request_json()
        if not exchange.ok or not request.get("PolicyNames"):
            return
        payload = exchange.json()
        policies = [p for p in payload.get("ScalingPolicies", []) if p.get("PolicyName") in request["PolicyNames"]]
        if request.get("ResourceId"):
            policies = [p for p in policies if p.get("ResourceId") == request["ResourceId"]]
        if request.get("MaxResults"):
            policies = policies[: int(request["MaxResults"])]
        exchange.set_json({"ScalingPolicies": policies})


class EcsCreateServiceSettings(Shim):
    """ECS ``CreateService`` drops settings that moto's ``UpdateService`` keeps.

    moto's CreateService ignores ``deploymentConfiguration`` (rolling percentages and the
    deployment circuit breaker), ``healthCheckGracePeriodSeconds`` and
    ``enableExecuteCommand``; DescribeServices then reports none of them, and
    ``community.aws.ecs_service`` sees a difference and updates the service on the next run
    (so a second run is never ``changed=0``). We store them on the created service, as
    AWS does.
    """

    name = "ecs-create-service-settings"
    summary = "ECS CreateService keeps deploymentConfiguration/healthCheckGracePeriodSeconds (ecs_service re-run)"
    _settings = {
        "deploymentConfiguration": "deployment_configuration",
        "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
        "enableExecuteCommand": "enable_execute_command",
    }

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "") == "AmazonEC2ContainerServiceV20141113.CreateService"

    def after(self, exchange):
        request = exchange.request_json()
        wanted = {key: request[key] for key in self._settings if key in request}
        if not exchange.ok or not wanted:
            return
        from moto.ecs.models import ecs_backends

        account, region = moto_scope(exchange.environ)
        backend = ecs_backends[account][region]
        cluster = request.get("cluster", "default").split("/")[-1]
        service = backend.services.get(f"{cluster}:{request['serviceName']}")
        if service is None:
            return
        payload = exchange.json()
        for key, attribute in self._settings.items():
            if key in wanted:
                setattr(service, attribute, wanted[key])
                payload.setdefault("service", {})[key] = wanted[key]
        exchange.set_json(payload)


class AppAutoscalingTags(Shim):
    """Application Auto Scaling's tag API is missing from moto.

    AWS tags scalable targets (``Tags`` on RegisterScalableTarget, ListTagsForResource,
    TagResource, UntagResource); moto ignores ``Tags`` and answers the three tag calls with
    HTTP 500 (not implemented), so ``dagster_ecs.fargate.appautoscaling_target`` cannot read
    or converge a target's tags. We keep the tags on moto's target object, so they live and
    die with the target (DeregisterScalableTarget drops them, as on AWS).
    """

    name = "appautoscaling-tags"
    summary = "Application Auto Scaling scalable-target tags (dagster_ecs.fargate.appautoscaling_target)"
    _prefix = "AnyScaleFrontendService."
    _calls = ("RegisterScalableTarget", "ListTagsForResource", "TagResource", "UntagResource")

    def matches(self, environ):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return target.startswith(self._prefix) and target[len(self._prefix) :] in self._calls

    @staticmethod
    def _target(environ, arn):
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        account, region = moto_scope(environ)
        backend = applicationautoscaling_backends[account][region]
        for by_resource in backend.targets.values():
            for target in by_resource.values():
                if target.arn == arn:
                    return target
        return None

    def respond(self, exchange):
        call = exchange.target[len(self._prefix) :]
        if call == "RegisterScalableTarget":
            return False
        request = exchange.request_json()
        target = self._target(exchange.environ, request.get("ResourceARN"))
        if target is None:
            exchange.answer(
                "400 Bad Request",
                {"__type": "ResourceNotFoundException", "message": f"No scalable target {request.get('ResourceARN')}"},
            )
            return True
        tags = target.__dict__.setdefault("dagster_ecs_tags", {})
        if call == "TagResource":
            tags.update(request.get("Tags") or {})
        elif call == "UntagResource":
            for key in request.get("TagKeys") or []:
                tags.pop(key, None)
        exchange.answer("200 OK", {"Tags": dict(tags)} if call == "ListTagsForResource" else {})
        return True

    def after(self, exchange):
        request = exchange.request_json()
        if not exchange.ok or not request.get("Tags"):
            return
        target = self._target(exchange.environ, exchange.json().get("ScalableTargetARN"))
        if target is not None:
            target.__dict__.setdefault("dagster_ecs_tags", {}).update(request["Tags"])


class S3PolicySecureTransport(Shim):
    """moto cannot evaluate a bucket policy's ``Bool`` conditions.

    moto's policy engine implements the ``StringEquals`` operator only and treats every
    other condition as satisfied. So a bucket policy that denies requests with
    ``aws:SecureTransport = false`` (refuse plain HTTP, as the DAG bucket's does) denies
    *every* object read and write. On AWS the SDKs use TLS and the statement never applies.
    The emulator stands in for AWS's HTTPS endpoints on loopback HTTP, so its object
    permission check evaluates ``Bool``/``BoolIfExists`` conditions itself, with the
    request context ``aws:SecureTransport = true``, before moto sees the policy. (Not a
    request rewrite: installed into moto's bucket model when the emulator starts.)
    """

    name = "s3-policy-secure-transport"
    summary = "S3 bucket policies' Bool conditions evaluated, with aws:SecureTransport=true (TLS-only bucket)"
    CONTEXT = {"aws:securetransport": "true"}

    def matches(self, environ):
        return False

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

    def install(self):
        from moto.iam.access_control import IAMPolicy, PermissionResult
        from moto.s3.models import FakeBucket

        evaluated = self.evaluated

        def get_permission(bucket, action, resource):
            if bucket.policy is None:
                return PermissionResult.NEUTRAL
            policy = evaluated(json.loads(bucket.policy))
            return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

        FakeBucket.get_permission = get_permission


class CloudMapPrivateZoneVpc(Shim):
    """A Cloud Map private DNS namespace's hosted zone is not associated with its VPC in moto.

    On AWS, ``CreatePrivateDnsNamespace`` creates a private Route 53 hosted zone associated
    with the namespace's VPC, and ``GetHostedZone`` lists that VPC. moto creates the zone with
    no VPC. ``dagster_ecs.fargate.cloudmap_namespace`` tells same-named namespaces of different
    VPCs apart by their zone's VPCs, so with another VPC's ``<project>.local`` present it found
    neither and teardown left the project's own namespace behind. We associate the namespace's
    VPC with its zone once moto has created both.
    """

    name = "cloudmap-private-zone-vpc"
    summary = "Cloud Map private DNS namespaces' hosted zones list their VPC (dagster_ecs.fargate.cloudmap_namespace)"
    _target = "Route53AutoNaming_v20170314.CreatePrivateDnsNamespace"

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "") == self._target

    def after(self, exchange):
        if not exchange.ok:
            return
        from moto.route53.models import route53_backends
        from moto.servicediscovery.models import servicediscovery_backends
        from moto.utilities.utils import get_partition

        account, region = moto_scope(exchange.environ)
        backend = servicediscovery_backends[account][region]
        operation = backend.operations.get(exchange.json().get("OperationId"))
        namespace = backend.namespaces.get(operation.targets.get("NAMESPACE")) if operation else None
        zone_id = (namespace.dns_properties or {}).get("HostedZoneId") if namespace else None
        if not zone_id or not namespace.vpc:
            return
        zone = route53_backends[account][get_partition(region)].get_hosted_zone(zone_id)
        if not any(vpc.get("vpc_id") == namespace.vpc for vpc in zone.vpcs):
            zone.add_vpc(namespace.vpc, region)


class EcrRegistryV2(Shim):
    """ECR's registry endpoint (the Docker Registry HTTP API v2) is missing from moto.

    On AWS, ``docker push`` sends an image's blobs and manifest to the repository URI's host
    (``<account>.dkr.ecr.<region>.amazonaws.com``), logged in with ``ecr:GetAuthorizationToken``,
    and ``DescribeImages`` then lists the tag. moto has the control plane only, so the image
    stage (``community.docker.docker_login`` / ``docker_image_push``, then
    ``dagster_ecs.fargate.ecr_image_info``) had nowhere to push offline. The emulator serves
    the registry under ``/v2/`` on its own port (``dagster_ecs_emulator/registry.py``), and
    registers each pushed manifest in moto's ECR. Not a request rewrite: a WSGI application in
    front of the layer, which streams blobs to disk.
    """

    name = "ecr-registry-v2"
    summary = "ECR's registry (Docker Registry HTTP API v2) under /v2/ on the emulator's port (image stage's push)"

    def matches(self, environ):
        return False

    def wrap(self, app):
        from .registry import Registry

        return Registry(app)


class RdsUniqueResourceId(Shim):
    """RDS gives every DB instance the same ``DbiResourceId``.

    moto 5.2.5 sets ``db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U`` on each instance; AWS gives each new instance
    its own (an instance deleted and created again under the same identifier is another resource,
    with another id). The local runtime tells a new instance from the one its PostgreSQL holds the
    data of by this id (a new instance gets a new, empty database), so the emulator gives each
    created instance a unique one, in its backend and in the CreateDBInstance answer.
    """

    name = "rds-unique-resource-id"
    summary = (
        "RDS CreateDBInstance gives each new instance its own DbiResourceId (local runtime: new instance, new database)"
    )
    _moto_id = "db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U"

    def matches(self, environ):
        return query_action(environ) == "CreateDBInstance"

    def after(self, exchange):
        if not exchange.ok:
            return
        import base64
        import secrets

        from moto.rds.models import rds_backends

        identifier = parse_qs(request_body(exchange.environ).decode("utf-8", "replace")).get(
            "DBInstanceIdentifier", [""]
        )[0]
        account, region = moto_scope(exchange.environ)
        database = rds_backends[account][region].databases.get(identifier)
        if database is None or database.dbi_resource_id != self._moto_id:
            return
        database.dbi_resource_id = "db-" + base64.b32encode(secrets.token_bytes(20)).decode()[:26]
        exchange.set_body(exchange.body.replace(self._moto_id.encode(), database.dbi_resource_id.encode()))


class EcsServiceTaskDefinitionArn(Shim):
    """ECS ``UpdateService`` keeps the task definition as given where AWS keeps its ARN.

    AWS resolves ``taskDefinition`` (``family``, ``family:revision`` or an ARN) and every later
    DescribeServices answers the full ARN. moto 5.2.5 resolves it on CreateService but stores the
    string as given on UpdateService, so after a rollout ``community.aws.ecs_service`` (which the
    ecs role gives ``family:revision``) leaves the service reporting ``dagster-ecs-webserver:2``.
    A playbook that reads the service (the ecs stage's lookup, the verify stage) then compares a
    short name with the ARN the local runtime runs. We resolve the name before moto stores it.
    """

    name = "ecs-service-task-definition-arn"
    summary = "ECS UpdateService stores the task definition's ARN, as DescribeServices reports it on AWS"

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "") == "AmazonEC2ContainerServiceV20141113.UpdateService"

    def before(self, environ):
        request = request_json(environ)
        given = request.get("taskDefinition")
        if not isinstance(given, str) or given.startswith("arn:"):
            return
        from moto.ecs.models import ecs_backends

        account, region = moto_scope(environ)
        try:
            request["taskDefinition"] = ecs_backends[account][region].describe_task_definition(given).arn
        except Exception:  # noqa: BLE001 - unknown name: moto answers the error AWS gives
            return
        replace_body(environ, json.dumps(request).encode())


class EcsRunTaskContainerMemory(Shim):
    """ECS ``RunTask`` needs a container-level memory that Fargate does not.

    On Fargate the task-level ``memory`` is enough; a container may leave ``memory`` and
    ``memoryReservation`` out (the run task definition's ``run`` container does). moto 5.2.5
    adds each container's memory to the task's requirements and fails with a TypeError (HTTP 500)
    when a container has none. We count a container without one as 0, as the other resources are;
    the stored task definition is left as registered (DescribeTaskDefinition shows no invented
    memory, so the ecs stage's re-run still compares equal). Installed into moto's ECS backend.
    """

    name = "ecs-run-task-container-memory"
    summary = "ECS RunTask of a Fargate task definition whose containers set no memory of their own (run tasks)"

    def matches(self, environ):
        return False  # not a request rewrite: install() patches the backend

    def install(self):
        import copy

        from moto.ecs.models import EC2ContainerServiceBackend

        original = EC2ContainerServiceBackend.__dict__["_calculate_task_resource_requirements"]
        calculate = getattr(original, "__func__", original)
        if getattr(calculate, "dagster_ecs_shim", False):
            return

        def requirements(task_definition):
            counted = copy.copy(task_definition)
            counted.container_definitions = [
                container
                if {"memory", "Memory", "memoryReservation", "MemoryReservation"} & set(container)
                else {**container, "memory": 0}
                for container in task_definition.container_definitions
            ]
            return calculate(counted)

        requirements.dagster_ecs_shim = True
        EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(requirements)


class EcsTaskLifecycle(Shim):
    """ECS tasks advance by a timer in moto; on AWS they report what their container did.

    moto 5.2.5 starts a ``RunTask`` task RUNNING and moves it one step towards STOPPED on every
    ``DescribeTasks`` (exit code 0, no reason), and ``StopTask`` stops it at once. A run launcher
    polling its run's task would see the run stop after four looks. ``ecs_tasks.py`` keeps the
    task where the runtime that runs it reports it (PROVISIONING at RunTask, RUNNING, STOPPED with
    the container's exit code and ``stoppedReason``), defers ``StopTask`` of a task a runtime
    runs until it stopped, and serves the runtime's control endpoint. Installed into moto's
    backend, and a WSGI application in front of the layer.
    """

    name = "ecs-task-lifecycle"
    summary = "ECS tasks report the state the local runtime gives them (no timer); StopTask waits for the task"

    def matches(self, environ):
        return False

    def install(self):
        from . import ecs_tasks

        ecs_tasks.install()

    def wrap(self, app):
        from .ecs_tasks import TaskControl

        return TaskControl(app)


SHIMS: list[Shim] = [
    EfsLegacyTags(),
    EcsClusterCapacityProviders(),
    Ec2RuleDescriptionsReturn(),
    CloudMapListFilters(),
    Elbv2AlbDefaultAttributes(),
    EcsEmptyTagLists(),
    RdsGp3Baseline(),
    AppAutoscalingPolicyNames(),
    EcsCreateServiceSettings(),
    AppAutoscalingTags(),
    S3PolicySecureTransport(),
    CloudMapPrivateZoneVpc(),
    EcrRegistryV2(),
    RdsUniqueResourceId(),
    EcsServiceTaskDefinitionArn(),
    EcsRunTaskContainerMemory(),
    EcsTaskLifecycle(),
]


class CompatLayer:
    """WSGI middleware applying the shims whose ``matches`` accepts the request."""

    def __init__(self, app, shims):
        self.app = app
        self.shims = list(shims)

    def __call__(self, environ, start_response):
        active = [shim for shim in self.shims if shim.matches(environ)]
        if not active:
            return self.app(environ, start_response)
        request_body(environ)  # buffered before moto consumes it, so shims can read it afterwards
        exchange = Exchange(environ)
        if any(shim.respond(exchange) for shim in active):
            start_response(exchange.status, exchange.headers)
            return [exchange.body]
        for shim in active:
            shim.before(environ)

        def _capture(status, headers, exc_info=None):
            exchange.status, exchange.headers = status, list(headers)
            return lambda data: None

        chunks = self.app(environ, _capture)
        try:
            exchange.body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        for shim in active:
            shim.after(exchange)
        start_response(exchange.status, exchange.headers)
        return [exchange.body]

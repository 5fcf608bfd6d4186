"""Who called what: every AWS call the emulator answers, attributed to the principal that signed it.

On AWS, IAM decides each call from the caller's identity, the action, the resource and the request's
context, and CloudTrail records it. moto decides nothing by default (and, asked to, treats most
resources as ``*`` and ignores conditions), so nothing offline would show that a task role allows
what the workload really calls, or grants what nothing calls. This recorder writes down, for each
call: the **principal** (the role whose ``sts:AssumeRole`` credentials signed it, the local runtime
hands each task its task role's credentials as Fargate does; any other key as itself), the IAM
**action**, the **resource** ARN as the service authorization reference defines it for that action,
and the **condition keys** the project's policies test (``ecs:cluster``, ``ecs:CreateAction``,
``iam:PassedToService``). Actions AWS authorizes *implicitly* are recorded as calls of their own:
``ecs:TagResource`` (context ``ecs:CreateAction=RunTask``) for a ``RunTask`` with tags, and
``iam:PassRole`` (``iam:PassedToService=ecs-tasks.amazonaws.com``) of the task definition's roles; a
``RegisterTaskDefinition`` implies ``iam:PassRole`` of the roles it names (and ``ecs:TagResource`` with
tags). ``client`` says who sent it: ``ansible`` (the amazon.aws user agent, a deploy) or ``sdk``.

``GET /_dagster_ecs_emulator/calls`` answers the distinct calls with their counts; ``DELETE`` forgets
them. ``policy.py`` evaluates them against a role's policies. Only calls the workload makes need an
exact resource; an action without one here is recorded with ``"resource": null`` so a test that
evaluates it fails and names it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import parse_qs, unquote

from .wsgi import credential_scope, json_response, moto_scope, query_action, request_body, request_json

CALLS_PATH = "/_dagster_ecs_emulator/calls"
MAX_DISTINCT = 50_000  # distinct (principal, action, resource, context) entries kept; the rest only counted


def principal(access_key: str, account: str) -> str:
    """The role ARN an access key from ``sts:AssumeRole`` acts as; any other key as ``access-key/<id>``."""
    from moto.sts.models import sts_backends

    try:
        assumed_roles = list(sts_backends[account]["aws"].assumed_roles)
    except Exception:  # noqa: BLE001 - no STS state for the account: not an assumed role
        assumed_roles = []
    for assumed in assumed_roles:
        if assumed.access_key_id == access_key:
            return assumed.role_arn
    return f"access-key/{access_key}"


# --- S3 (REST): the action from the method, the path and the sub-resource ------------------------------
_S3_BUCKET_SUBRESOURCES = {
    ("GET", "versioning"): "GetBucketVersioning",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "encryption"): "GetEncryptionConfiguration",
    ("PUT", "encryption"): "PutEncryptionConfiguration",
    ("GET", "policy"): "GetBucketPolicy",
    ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy",
    ("GET", "publicAccessBlock"): "GetBucketPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("GET", "ownershipControls"): "GetBucketOwnershipControls",
    ("PUT", "ownershipControls"): "PutBucketOwnershipControls",
    ("DELETE", "ownershipControls"): "PutBucketOwnershipControls",
    ("GET", "tagging"): "GetBucketTagging",
    ("PUT", "tagging"): "PutBucketTagging",
    ("DELETE", "tagging"): "PutBucketTagging",
    ("GET", "acl"): "GetBucketAcl",
    ("PUT", "acl"): "PutBucketAcl",
    ("GET", "lifecycle"): "GetLifecycleConfiguration",
    ("PUT", "lifecycle"): "PutLifecycleConfiguration",
    ("DELETE", "lifecycle"): "PutLifecycleConfiguration",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versions"): "ListBucketVersions",
    ("GET", "object-lock"): "GetBucketObjectLockConfiguration",
    ("GET", "website"): "GetBucketWebsite",
    ("GET", "cors"): "GetBucketCORS",
    ("GET", "logging"): "GetBucketLogging",
    ("GET", "notification"): "GetBucketNotification",
    ("GET", "requestPayment"): "GetBucketRequestPayment",
    ("GET", "accelerate"): "GetAccelerateConfiguration",
    ("GET", "replication"): "GetReplicationConfiguration",
    ("POST", "delete"): "DeleteObject",
}
_S3_OBJECT = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}


def _s3(environ, method: str) -> tuple[str, str]:
    """(action, resource) of an S3 request (path style: ``/bucket[/key]``)."""
    path = unquote(environ.get("PATH_INFO", ""))
    bucket, _, key = path.lstrip("/").partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if not bucket:
        return "ListAllMyBuckets", "*"
    if key:
        if "versionId" in query and method in ("GET", "HEAD"):
            return "GetObjectVersion", f"arn:aws:s3:::{bucket}/{key}"
        if "versionId" in query and method == "DELETE":
            return "DeleteObjectVersion", f"arn:aws:s3:::{bucket}/{key}"
        if "tagging" in query:
            return ("GetObjectTagging" if method == "GET" else "PutObjectTagging"), f"arn:aws:s3:::{bucket}/{key}"
        return _S3_OBJECT.get(method, f"Unknown{method}Object"), f"arn:aws:s3:::{bucket}/{key}"
    for (verb, sub), action in _S3_BUCKET_SUBRESOURCES.items():
        if verb == method and sub in query:
            return action, (f"arn:aws:s3:::{bucket}/*" if action == "DeleteObject" else f"arn:aws:s3:::{bucket}")
    bucket_actions = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
    return bucket_actions.get(method, f"Unknown{method}Bucket"), f"arn:aws:s3:::{bucket}"


# --- JSON and query protocols: the action's resource from the request (and the answer) -----------------
def _passed_to_ecs_tasks(roles) -> list[tuple[str, str, dict]]:
    """The ``iam:PassRole`` an ECS call implies for each role it hands to the tasks."""
    passed = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    return [("iam:PassRole", role, passed) for role in sorted({r for r in roles if r})]


def _ecs_cluster_arn(backend_scope, cluster: str | None) -> str:
    account, region = backend_scope
    cluster = cluster or "default"
    return cluster if cluster.startswith("arn:") else f"arn:aws:ecs:{region}:{account}:cluster/{cluster}"


def _ecs_task_arn(backend_scope, cluster_arn: str, task: str) -> str:
    account, region = backend_scope
    if task.startswith("arn:"):
        return task
    return f"arn:aws:ecs:{region}:{account}:task/{cluster_arn.rsplit('/', 1)[-1]}/{task}"


def _task_definition_roles(backend_scope, arn: str) -> dict:
    """The task definition's ``taskRoleArn`` and ``executionRoleArn`` (as moto holds the revision)."""
    from moto.ecs.models import ecs_backends

    account, region = backend_scope
    try:
        definition = ecs_backends[account][region].describe_task_definition(arn)
    except Exception:  # noqa: BLE001 - gone since (a teardown): no roles to name
        return {}
    return {
        "taskRoleArn": getattr(definition, "task_role_arn", None),
        "executionRoleArn": getattr(definition, "execution_role_arn", None),
    }


def _ecs(scope, action: str, params: dict, answer: dict) -> list[tuple[str, str | None, dict]]:
    """The (action, resource, context) entries of one ECS call: the call, then what it implies."""
    cluster = _ecs_cluster_arn(scope, params.get("cluster"))
    context = {"ecs:cluster": cluster}
    if action in ("DescribeTasks", "StopTask"):
        tasks = params.get("tasks") or ([params["task"]] if params.get("task") else [])
        return [(f"ecs:{action}", _ecs_task_arn(scope, cluster, task), context) for task in tasks]
    if action == "RunTask":
        started = answer.get("tasks") or []
        definition_arn = started[0]["taskDefinitionArn"] if started else params.get("taskDefinition", "")
        if definition_arn and not definition_arn.startswith("arn:"):
            definition_arn = None  # refused before a revision was chosen: nothing to name
        entries = [("ecs:RunTask", definition_arn, context)]
        if params.get("tags"):
            entries += [("ecs:TagResource", task["taskArn"], {"ecs:CreateAction": "RunTask"}) for task in started]
        definition = _task_definition_roles(scope, definition_arn) if definition_arn else {}
        overrides = params.get("overrides") or {}
        return entries + _passed_to_ecs_tasks(
            (
                overrides.get("taskRoleArn") or definition.get("taskRoleArn"),
                overrides.get("executionRoleArn") or definition.get("executionRoleArn"),
            )
        )
    if action == "RegisterTaskDefinition":
        roles = (params.get("taskRoleArn"), params.get("executionRoleArn"))
        entries = [("ecs:RegisterTaskDefinition", "*", {})] + _passed_to_ecs_tasks(roles)
        revision = (answer.get("taskDefinition") or {}).get("taskDefinitionArn")
        if params.get("tags") and revision:
            entries.append(("ecs:TagResource", revision, {"ecs:CreateAction": "RegisterTaskDefinition"}))
        return entries
    if action in ("DescribeTaskDefinition", "ListTaskDefinitions"):
        return [(f"ecs:{action}", "*", {})]
    if action in ("DescribeServices", "UpdateService", "DeleteService"):
        services = params.get("services") or [params.get("service", "")]
        account, region = scope
        name = cluster.rsplit("/", 1)[-1]
        return [
            (f"ecs:{action}", f"arn:aws:ecs:{region}:{account}:service/{name}/{s.rsplit('/', 1)[-1]}", context)
            for s in services
        ]
    if action == "ListTasks":
        return [("ecs:ListTasks", "*", context)]
    if action in ("DescribeClusters",):
        return [(f"ecs:{action}", _ecs_cluster_arn(scope, c), {}) for c in params.get("clusters") or ["default"]]
    return [(f"ecs:{action}", None, context)]


def _logs(scope, action: str, params: dict) -> list[tuple[str, str | None, dict]]:
    account, region = scope
    group = params.get("logGroupName", "")
    base = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    if action in ("GetLogEvents", "PutLogEvents", "CreateLogStream"):
        return [(f"logs:{action}", f"{base}:log-stream:{params.get('logStreamName', '')}", {})]
    if action in ("DescribeLogStreams", "FilterLogEvents", "DeleteLogGroup", "PutRetentionPolicy"):
        return [(f"logs:{action}", f"{base}:*", {})]
    if action == "DescribeLogGroups":
        return [("logs:DescribeLogGroups", "*", {})]
    return [(f"logs:{action}", None, {})]


def _secretsmanager(scope, action: str, params: dict) -> list[tuple[str, str | None, dict]]:
    from moto.secretsmanager.models import secretsmanager_backends

    if "SecretId" not in params:
        return [(f"secretsmanager:{action}", "*" if action in ("ListSecrets", "GetRandomPassword") else None, {})]
    secret_id = params["SecretId"]
    if not secret_id.startswith("arn:"):
        account, region = scope
        try:
            secret_id = secretsmanager_backends[account][region].secrets[secret_id].arn
        except Exception:  # noqa: BLE001 - no such secret: its ARN cannot be named
            secret_id = None
    return [(f"secretsmanager:{action}", secret_id, {})]


UNSCOPED = {
    # Actions with no resource type in the service authorization reference: ``*`` is their resource.
    "ec2:DescribeNetworkInterfaces",
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
}


def entries(environ, answer: dict, scope: tuple[str, str]) -> list[tuple[str, str | None, dict]]:
    """The (action, resource, context) entries of one answered request; ``scope``: its (account, region)."""
    service = credential_scope(environ)[2]
    if not service:
        return []
    method = environ.get("REQUEST_METHOD", "GET")
    if service == "s3":
        action, resource = _s3(environ, method)
        return [(f"s3:{action}", resource, {})]
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        action = target.rsplit(".", 1)[-1]
        params = request_json(environ)
    else:
        action = query_action(environ)
        body = request_body(environ).decode("utf-8", "replace")
        params = {k: v[0] for k, v in parse_qs(body).items()}
        if not action:
            return [(f"{service}:{method} {environ.get('PATH_INFO', '')}", None, {})]
    if service == "ecs":
        return _ecs(scope, action, params, answer)
    if service == "logs":
        return _logs(scope, action, params)
    if service == "secretsmanager":
        return _secretsmanager(scope, action, params)
    if service == "sts" and action == "AssumeRole":
        return [("sts:AssumeRole", params.get("RoleArn"), {})]
    name = f"{service}:{action}"
    return [(name, "*" if name in UNSCOPED else None, {})]


class CallRecorder:
    """WSGI middleware: records every signed request it passes on (see the module's docstring)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.dropped = 0
        self.principals: dict[str, str] = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == CALLS_PATH:
            return self.control(environ, start_response)
        key, _region, service = credential_scope(environ)
        if not service:
            return self.app(environ, start_response)
        if service != "s3":  # S3's action is in its method and path; its bodies (objects) are not kept
            request_body(environ)  # kept for the recorder; moto gets an unread copy
        status = []

        def _start(code, headers, exc_info=None):
            status.append(code)
            return start_response(code, headers, exc_info)

        chunks = self.app(environ, _start)
        wants_answer = environ.get("HTTP_X_AMZ_TARGET", "").endswith((".RunTask", ".RegisterTaskDefinition"))
        if wants_answer:
            try:
                body = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            chunks = [body]
        self.record(environ, key, status[0] if status else "", chunks if wants_answer else None)
        return chunks

    def record(self, environ, key: str, status: str, body) -> None:
        answer = {}
        if body:
            try:
                answer = json.loads(b"".join(body) or b"{}")
            except ValueError:
                answer = {}
        scope = moto_scope(environ)
        try:
            found = entries(environ, answer, scope)
        except Exception as exc:  # noqa: BLE001 - recording must never break the call it records
            found = [(f"unrecorded:{type(exc).__name__}", None, {"error": str(exc)[:200]})]
        who = self.principals.get(key)
        if who is None:  # a key is an assumed role's from its AssumeRole on, or never: look it up once
            who = self.principals[key] = principal(key, scope[0])
        outcome = "ok" if status.startswith(("2", "3")) else (status.split(" ", 1)[0] or "none")
        client = "ansible" if "Ansible/" in environ.get("HTTP_USER_AGENT", "") else "sdk"
        with self.lock:
            for action, resource, context in found:
                entry = (who, action, resource, json.dumps(context, sort_keys=True), outcome, client)
                if entry in self.calls or len(self.calls) < MAX_DISTINCT:
                    self.calls[entry] += 1
                else:
                    self.dropped += 1

    def control(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "DELETE":
            with self.lock:
                self.calls.clear()
                self.dropped = 0
            return json_response(start_response, "200 OK", {"calls": [], "dropped": 0})
        with self.lock:
            calls = [
                {
                    "principal": who,
                    "action": action,
                    "resource": resource,
                    "context": json.loads(context),
                    "outcome": outcome,
                    "client": client,
                    "count": count,
                }
                for (who, action, resource, context, outcome, client), count in sorted(self.calls.items(), key=str)
            ]
            dropped = self.dropped
        return json_response(start_response, "200 OK", {"calls": calls, "dropped": dropped})

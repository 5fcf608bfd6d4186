"""Each local task acts as its task role, and the runtime as each task's execution role, as on Fargate.

On Fargate a container holds no access key: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` points the AWS
SDKs at the task's credentials endpoint, which answers temporary credentials of the task
definition's ``taskRoleArn`` (``RunTask``'s ``overrides.taskRoleArn`` when given), refreshed before
they expire. The ECS agent itself reads the container's ``secrets`` and writes its ``awslogs`` stream
with the **execution** role's credentials.

The runtime does the same through the emulator's STS: ``AssumeRole`` of the role with the task's ID as
session name (as ECS names the session), served to the task at
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (``http://127.0.0.1:<port>/v2/credentials/<id>``: the SDKs accept
a loopback full URI, and Fargate's link-local address is not reachable here). So every AWS call a task
makes is signed with its own role's key, and the emulator's call recorder (``calls.py``) attributes it
to that role, which is what lets a test prove each role's policy allows exactly what its task calls.
"""

from __future__ import annotations

import datetime
import threading
import uuid

ENV = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
DURATION_SECONDS = 3600  # AssumeRole's default, as ECS's task credentials
REFRESH_BEFORE = datetime.timedelta(minutes=15)  # re-assume when less is left (the SDKs refresh from 15 min)


def _expiration(value) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class RoleSessions:
    """Temporary credentials of roles, by (role ARN, session name), assumed through the emulator's STS."""

    def __init__(self, clients):
        self.clients = clients  # the deployer's clients (the runtime plays ECS, which may assume the roles)
        self.lock = threading.Lock()
        self.sessions: dict[tuple[str, str], dict] = {}

    def credentials(self, role_arn: str, session_name: str) -> dict:
        """``{AccessKeyId, SecretAccessKey, SessionToken, Expiration}`` (a datetime), fresh for 15 min at least."""
        key = (role_arn, session_name[:64])
        with self.lock:
            found = self.sessions.get(key)
            now = datetime.datetime.now(datetime.UTC)
            if found is None or _expiration(found["Expiration"]) - now < REFRESH_BEFORE:
                answer = self.clients("sts").assume_role(
                    RoleArn=role_arn, RoleSessionName=key[1], DurationSeconds=DURATION_SECONDS
                )
                found = dict(answer["Credentials"], Expiration=_expiration(answer["Credentials"]["Expiration"]))
                self.sessions[key] = found
            return dict(found)

    def document(self, role_arn: str, session_name: str) -> dict:
        """The task credentials endpoint's answer (the shape the SDKs' container provider reads)."""
        found = self.credentials(role_arn, session_name)
        return {
            "RoleArn": role_arn,
            "AccessKeyId": found["AccessKeyId"],
            "SecretAccessKey": found["SecretAccessKey"],
            "Token": found["SessionToken"],
            "Expiration": found["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def client_factory(self, role_arn: str, session_name: str, endpoint: str, region: str):
        """``factory(service)``: boto3 clients signed as the role, refreshing its credentials as they age."""
        import boto3
        import botocore.session
        from botocore.credentials import RefreshableCredentials

        def refresh() -> dict:
            found = self.credentials(role_arn, session_name)
            return {
                "access_key": found["AccessKeyId"],
                "secret_key": found["SecretAccessKey"],
                "token": found["SessionToken"],
                "expiry_time": found["Expiration"].isoformat(),
            }

        core = botocore.session.get_session()
        core._credentials = RefreshableCredentials.create_from_metadata(  # noqa: SLF001 - botocore's documented way
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        session = boto3.session.Session(botocore_session=core, region_name=region)
        return lambda service: session.client(service, endpoint_url=endpoint)

    def forget(self, session_name: str) -> None:
        with self.lock:
            for key in [key for key in self.sessions if key[1] == session_name[:64]]:
                del self.sessions[key]


class CredentialsRoutes:
    """``/v2/credentials/<id>`` answers, one unguessable id per task (served by the metadata endpoint)."""

    PREFIX = "/v2/credentials/"

    def __init__(self, sessions: RoleSessions):
        self.sessions = sessions
        self.lock = threading.Lock()
        self.routes: dict[str, tuple[str, str]] = {}  # id -> (role ARN, session name)

    def add(self, role_arn: str, session_name: str) -> str:
        """A new route to ``role_arn``'s credentials; returns its path."""
        route = uuid.uuid4().hex
        with self.lock:
            self.routes[route] = (role_arn, session_name)
        return self.PREFIX + route

    def remove_session(self, session_name: str) -> None:
        """The task stopped: its routes answer 404 from now on, and its role sessions are dropped."""
        with self.lock:
            for route in [route for route, (_, name) in self.routes.items() if name == session_name]:
                del self.routes[route]
        self.sessions.forget(session_name)

    def answer(self, path: str) -> tuple[int, dict] | None:
        """The answer to ``path`` if it is a credentials path (404 for an unknown id), else None."""
        if not path.startswith(self.PREFIX):
            return None
        with self.lock:
            found = self.routes.get(path.removeprefix(self.PREFIX).split("?", 1)[0])
        if found is None:
            return 404, {"code": "NotFound", "message": "no task's credentials at this path"}
        return 200, self.sessions.document(*found)

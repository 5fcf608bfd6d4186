"""What the emulated RDS control plane tells its data plane, the local runtime's PostgreSQL.

On AWS, an RDS instance's database server follows the instance: a new instance is a new, empty
database; ModifyDBInstance with ``MasterUserPassword`` changes the master role's password. The
local runtime plays that server, so it asks the emulator, on loopback, what the instance is now::

    GET /_dagster_ecs_emulator/rds/instances/<identifier>?region=<region>
    200 {"identifier", "dbi_resource_id", "master_username", "db_name", "password_verifier"}
    404 no such instance (deleted, or the emulator restarted empty)

The master password never leaves the emulator in clear: the answer carries PostgreSQL's
SCRAM-SHA-256 verifier of it, which PostgreSQL stores as is when it is given as a password
(``initdb --pwfile``, ``ALTER ROLE ... PASSWORD``). Its salt is derived from the instance's
``DbiResourceId``, so the verifier changes exactly when the password (or the instance) does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs

RDS_PATH = "/_dagster_ecs_emulator/rds/instances/"
SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (RFC 5802, 7677)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def describe(identifier: str, region: str) -> dict | None:
    """The instance ``identifier`` in ``region`` of any account moto holds, as the data plane needs it."""
    from moto.rds.models import rds_backends

    for account in list(rds_backends.keys()):
        database = rds_backends[account][region].databases.get(identifier)
        if database is None:
            continue
        password = getattr(database, "_master_user_password", None) or ""
        salt = hashlib.sha256(f"dagster-ecs-emulator:{database.dbi_resource_id}".encode()).digest()[:16]
        return {
            "identifier": identifier,
            "dbi_resource_id": database.dbi_resource_id,
            "master_username": database.master_username,
            "db_name": database.db_name or "postgres",
            "password_verifier": scram_verifier(password, salt),
        }
    return None


class RdsDataPlane:
    """WSGI: answers ``RDS_PATH`` requests; everything else goes on to the emulator."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(RDS_PATH) or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        region = parse_qs(environ.get("QUERY_STRING", "")).get("region", ["us-east-1"])[0]
        found = describe(path[len(RDS_PATH) :], region)
        status = "200 OK" if found else "404 Not Found"
        body = json.dumps(found or {"message": "DB instance not found"}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

"""The running offline rehearsal (``make rehearsal``), as the benchmarks reach it: its URL, basic-auth
header from Secrets Manager, the asset keys in GraphQL and the public /health."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

from .emulator import OFFLINE_CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".state" / "offline"
ENDPOINT = "http://127.0.0.1:4566"


class Rehearsal:
    """Raises OSError, KeyError or ValueError when there is no rehearsal (no outputs, no secret)."""

    def __init__(self, state: Path = STATE, endpoint: str = ENDPOINT):
        import boto3

        self.state = state
        outputs = json.loads((state / "outputs.json").read_text())
        self.url = outputs["load_balancer_url"]
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=endpoint,
            region_name="ap-southeast-2",
            aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        secret = secrets.get_secret_value(SecretId=outputs.get("basic_auth_secret_id", "dagster-ecs/basic-auth"))
        creds = json.loads(secret["SecretString"])
        token = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
        self.header = f"Basic {token}"

    def assets(self) -> set[str]:
        """The asset keys the webserver serves (empty when it does not answer)."""
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        headers = {"Content-Type": "application/json", "Authorization": self.header}
        request = urllib.request.Request(f"{self.url}/graphql", data=query, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                nodes = json.loads(response.read())["data"]["assetNodes"]
        except (OSError, KeyError, TypeError, ValueError):
            return set()
        return {"/".join(node["assetKey"]["path"]) for node in nodes}

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:  # noqa: S310 - loopback
                return response.status == 200
        except OSError:
            return False

    def services(self) -> dict:
        """The local runtime's tasks (status.json): pid (the task's session), task_definition, running."""
        return json.loads((self.state / "runtime" / "status.json").read_text())["services"]

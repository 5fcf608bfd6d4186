"""The ECS task metadata endpoint v4, served to the local tasks on loopback.

On Fargate every container finds ``ECS_CONTAINER_METADATA_URI_V4`` in its environment: ``GET $URI``
answers the container's own metadata, ``GET $URI/task`` the task's (cluster, task ARN, family,
revision, status, limits, containers and their networks). dagster-aws reads it when the run
launcher takes its configuration from the current task (``use_current_ecs_task_config``) and to
name the current container; anything else running in a task may too.

The local runtime registers each task it runs in the emulated ECS, then publishes that task's
documents here, built from what ``DescribeTasks`` and ``DescribeTaskDefinition`` answer, and puts
``http://127.0.0.1:<port>/v4/<task id>`` in the task's environment. ``/stats`` and ``/task/stats``
(Docker statistics) are not served: nothing here has a Docker engine to ask. The same loopback server
answers each task's credentials endpoint (``/v2/credentials/<id>``, ``credentials.py``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = "ECS_CONTAINER_METADATA_URI_V4"


def _time(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def documents(task: dict, definition: dict, container: dict) -> tuple[dict, dict]:
    """The ``/task`` and ``/`` answers for ``task`` (a DescribeTasks item) and its essential container."""
    details = {
        d["name"]: d["value"]
        for attachment in task.get("attachments", [])
        if attachment.get("type") == "ElasticNetworkInterface"
        for d in attachment.get("details", [])
    }
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    log = container.get("logConfiguration") or {}
    network = {"NetworkMode": definition.get("networkMode", "awsvpc"), "AttachmentIndex": 0}
    if details.get("privateIPv4Address"):
        network["IPv4Addresses"] = [details["privateIPv4Address"]]
    if details.get("macAddress"):
        network["MACAddress"] = details["macAddress"]
    if details.get("privateDnsName"):
        network["PrivateDNSName"] = details["privateDnsName"]
    described = next((c for c in task.get("containers", []) if c.get("name") == container["name"]), {})
    own = {
        "DockerId": f"{task_id}-{container['name']}",
        "Name": container["name"],
        "DockerName": container["name"],
        "Image": container.get("image", ""),
        "ImageID": "",
        "Labels": {
            "com.amazonaws.ecs.cluster": task.get("clusterArn", ""),
            "com.amazonaws.ecs.container-name": container["name"],
            "com.amazonaws.ecs.task-arn": task["taskArn"],
            "com.amazonaws.ecs.task-definition-family": definition["family"],
            "com.amazonaws.ecs.task-definition-version": str(definition["revision"]),
        },
        "DesiredStatus": task.get("desiredStatus", "RUNNING"),
        "KnownStatus": task.get("lastStatus", "RUNNING"),
        "Limits": {"CPU": int(container.get("cpu") or 0), "Memory": int(container.get("memory") or 0)},
        "CreatedAt": _time(task.get("createdAt")),
        "StartedAt": _time(task.get("startedAt")),
        "Type": "NORMAL",
        "ContainerARN": described.get("containerArn", ""),
        "LogDriver": log.get("logDriver", ""),
        "LogOptions": log.get("options", {}),
        "Networks": [network],
    }
    whole = {
        "Cluster": task.get("clusterArn", ""),
        "TaskARN": task["taskArn"],
        "Family": definition["family"],
        "Revision": str(definition["revision"]),
        "DesiredStatus": task.get("desiredStatus", "RUNNING"),
        "KnownStatus": task.get("lastStatus", "RUNNING"),
        "Limits": {"CPU": int(definition.get("cpu") or 256) / 1024, "Memory": int(definition.get("memory") or 512)},
        "PullStartedAt": _time(task.get("createdAt")),
        "PullStoppedAt": _time(task.get("createdAt")),
        "AvailabilityZone": task.get("availabilityZone", ""),
        "LaunchType": task.get("launchType", "FARGATE"),
        "Containers": [own],
    }
    if str(task.get("group", "")).startswith("service:"):
        whole["ServiceName"] = task["group"].split(":", 1)[1]
    return whole, own


class MetadataEndpoint:
    """One loopback HTTP server answering every local task's metadata, each under ``/v4/<task id>``."""

    def __init__(self, host: str = "127.0.0.1", credentials=None):
        self.tasks: dict[str, tuple[dict, dict]] = {}
        self.credentials = credentials  # credentials.CredentialsRoutes, or None: no credentials served
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, payload = endpoint.answer(self.path)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # the tasks ask often; nothing worth a line each
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.2,), daemon=True, name="metadata")
        self.thread.start()

    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def uri(self, task_arn: str) -> str:
        return f"{self.base()}/v4/{task_arn.rsplit('/', 1)[-1]}"

    def credentials_uri(self, role_arn: str, task_arn: str) -> str:
        """Serve ``role_arn``'s credentials to the task (until it is forgotten); the full URI to give it."""
        return self.base() + self.credentials.add(role_arn, task_arn.rsplit("/", 1)[-1])

    def publish(self, task: dict, definition: dict, container: dict) -> str:
        """Serve ``task``'s documents (again, when its status changed); returns its URI."""
        with self.lock:
            self.tasks[task["taskArn"].rsplit("/", 1)[-1]] = documents(task, definition, container)
        return self.uri(task["taskArn"])

    def status(self, task_arn: str, known: str, desired: str | None = None) -> None:
        with self.lock:
            found = self.tasks.get(task_arn.rsplit("/", 1)[-1])
            if found:
                for document in (found[0], found[1], *found[0]["Containers"]):
                    document["KnownStatus"] = known
                    if desired:
                        document["DesiredStatus"] = desired

    def forget(self, task_arn: str) -> None:
        task_id = task_arn.rsplit("/", 1)[-1]
        with self.lock:
            self.tasks.pop(task_id, None)
        if self.credentials:
            self.credentials.remove_session(task_id)

    def answer(self, path: str) -> tuple[int, dict]:
        credentials = self.credentials.answer(path) if self.credentials else None
        if credentials is not None:
            return credentials
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v4":
            return 404, {"error": "not a metadata path: /v4/<task id>[/task]"}
        with self.lock:
            found = self.tasks.get(parts[1])
            if found is None:
                return 404, {"error": f"no task {parts[1]} runs here"}
            if parts[2:] == []:
                return 200, json.loads(json.dumps(found[1]))
            if parts[2:] == ["task"]:
                return 200, json.loads(json.dumps(found[0]))
        return 404, {"error": f"not served here: {path} (only / and /task)"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""ECS tasks that tell the truth: their state comes from whoever runs them, not from a timer.

moto's ECS never runs a task. ``RunTask`` answers RUNNING at once and every ``DescribeTasks``
advances the task one step towards STOPPED (``ManagedState``), so a caller that polls sees a task
stop after four looks, with exit code 0, whatever it would have done. On AWS a task starts
PROVISIONING, becomes RUNNING when its container started, and is STOPPED when its essential
container exited, with that container's exit code and a ``stoppedReason``; ``StopTask`` sets the
desired status and the reason, and the task stops when its container did (SIGTERM, then SIGKILL
after ``stopTimeout``).

Offline, the local runtime (``runtime.py``, ``oneoff.py``) runs the tasks. This module makes moto's
tasks carry what the runtime reports:

* installed into moto's ECS backend (``patches()``, through ``patches.py``): a task never advances
  by itself; a task made by ``RunTask`` starts PROVISIONING; ``StopTask`` of a task a runtime has
  *claimed* only records the desired status, the reason and ``stopCode: UserInitiated`` (the
  runtime stops it and reports STOPPED); an unclaimed task (no runtime runs it) stops at once, as
  moto did;
* a control endpoint the runtime reports through (loopback, like the rest of the emulator)::

    POST /_dagster_ecs_emulator/ecs/task
      {"cluster": ..., "task": <arn>, "claim": true,
       "lastStatus": "RUNNING" | "STOPPED", "exitCode": 3, "stoppedReason": "...",
       "healthStatus": "UNKNOWN" | "HEALTHY" | "UNHEALTHY"}

  and, for the services' tasks the runtime starts itself (so ``DescribeTasks`` and ``ListTasks``
  know them, as on AWS)::

    POST /_dagster_ecs_emulator/ecs/task
      {"cluster": ..., "register": {"taskDefinition": <arn>, "group": "service:<name>",
       "startedBy": "ecs-svc/...", "networkConfiguration": {...}}}

* a service whose tasks a runtime runs reports what they are, not moto's numbers (moto answers
  ``runningCount`` equal to the desired count, or to ``MOTO_ECS_SERVICE_RUNNING``, and one
  deployment that never changes): ``runningCount`` and ``pendingCount`` count its tasks, the
  PRIMARY deployment is the service's task definition, COMPLETED once as many of its tasks run as
  desired, each of them HEALTHY when an essential container of its definition has a ``healthCheck``
  ("all of its tasks are running and healthy", as ECS completes a rolling deployment), and no task of
  another revision runs; a revision still running is an ACTIVE deployment;
* ``UpdateService`` with another task definition starts a new PRIMARY deployment (a new id and
  ``createdAt``, IN_PROGRESS) as ECS does; moto keeps the first deployment for the service's life
  and renews it only with ``forceNewDeployment``;
* the deployment circuit breaker (``deploymentConfiguration.deploymentCircuitBreaker``), which moto
  lacks: while a service's PRIMARY deployment is IN_PROGRESS, each of its tasks that fails (its essential
  container exited, its health checks failed, it could not start) counts in the deployment's
  ``failedTasks``; at ECS's threshold (half the desired count, at least 3, at most 200) the deployment is
  FAILED and, with ``rollback``, the service goes back to the task definition of its last COMPLETED
  deployment in a new PRIMARY deployment, with ECS's service events. The local runtime follows the
  service's task definition, so it then runs the old revision again, as ECS does. A failing first
  deployment (nothing completed to go back to) stays IN_PROGRESS, its tasks retried;
* a task's ``healthStatus`` (the task's and its container's) is what the runtime reports of the
  container's health check (``healthchecks.py``): ``UNKNOWN`` until a check counts, as ECS reports it;
  moto answers ``HEALTHY`` for every container, checked or not;
* ``DeleteCluster`` of a cluster with a task that is not STOPPED fails with
  ``ClusterContainsTasksException``, as ECS does (moto deletes it);
* ``ListTasks(serviceName=...)`` lists that service's tasks (moto ignores the filter: "We can't
  filter on service_name until the backend actually launches tasks").

``report()`` is the runtime's side of the control endpoint.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import zlib
from datetime import UTC, datetime

TASK_PATH = "/_dagster_ecs_emulator/ecs/task"
_LOCK = threading.Lock()


def _now() -> datetime:
    return datetime.now(UTC)


def _backend(account: str, region: str):
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def _find(backend, cluster: str, task: str):
    name = cluster.rsplit("/", 1)[-1]
    for arn, found in backend.tasks.get(name, {}).items():
        if arn == task or arn.endswith("/" + task.rsplit("/", 1)[-1]):
            return found
    raise KeyError(f"task {task} not found in cluster {name}")


def _find_service(backend, cluster: str, service: str):
    """moto's service ``service`` (name or ARN) of ``cluster``, or None."""
    return backend.services.get(f"{cluster.rsplit('/', 1)[-1]}:{service.rsplit('/', 1)[-1]}")


def set_state(
    task,
    last_status: str | None = None,
    exit_code: int | None = None,
    reason: str | None = None,
    health: str | None = None,
) -> None:
    """Record what the runtime reports on moto's task and its (one) container."""
    task.dagster_ecs_claimed = True
    container = task.containers[0] if task.containers else None
    if health:  # the container's health check's status, and so the task's (its one container is essential)
        task.health_status = health
        if container is not None:
            container.health_status = health
    if last_status:
        task.last_status = last_status
        if container is not None:
            container.last_status = last_status
        if last_status == "RUNNING" and not getattr(task, "started_at", None):
            task.started_at = _now()
        if last_status == "STOPPED":
            task.desired_status = "STOPPED"
            task.stopped_at = task.execution_stopped_at = _now()
            if not task.stopped_reason:
                task.stopped_reason = reason or "Essential container in task exited"
            if not getattr(task, "stop_code", None):
                task.stop_code = "EssentialContainerExited"
    if exit_code is not None and container is not None:
        container.exitCode = exit_code
        container.exit_code = exit_code
    if reason and container is not None:
        container.reason = reason


def _never_advance(_original):
    return lambda self: None  # the runtime reports the state (set_state), never a timer


def _truthful_run_task(run_task):
    def truthful_run_task(self, *args, **kwargs):
        tasks = run_task(self, *args, **kwargs)
        for task in tasks:
            task.last_status = "PROVISIONING"
            task.created_at = _now()
            for container in task.containers:
                container.last_status = "PENDING"
        return tasks

    return truthful_run_task


def _deferred_stop_task(stop_task):
    def deferred_stop_task(self, cluster_str, task_str, reason):
        with _LOCK:
            task = _find(self, cluster_str, task_str)
            if not getattr(task, "dagster_ecs_claimed", False) or task.last_status == "STOPPED":
                return stop_task(self, cluster_str, task_str, reason)
            task.desired_status = "STOPPED"
            task.stopped_reason = reason or "Task stopped by user"
            task.stop_code = "UserInitiated"
            task.stopping_at = _now()
            return task

    return deferred_stop_task


def _deploying_update_service(update_service):
    def deploying_update_service(self, service_properties):
        # moto keeps the PRIMARY deployment (id, createdAt) when the task definition changes; ECS starts a
        # new deployment (the old one is ACTIVE while its tasks drain: count_service_tasks lists those).
        wanted = service_properties.get("task_definition")
        with _LOCK:
            before = _find_service(self, service_properties.get("cluster", "default"), service_properties["service"])
            previous = before.task_definition if before else None
        service = update_service(self, service_properties)
        if wanted and previous and _revision(service.task_definition) != _revision(previous) and service.deployments:
            now = _now()
            deployment = {
                **service.deployments[0],
                "id": f"ecs-svc/{secrets.randbelow(10**19):019d}",
                "status": "PRIMARY",
                "taskDefinition": service.task_definition,
                "createdAt": now,
                "updatedAt": now,
            }
            if _claimed_tasks(self, service):  # a runtime runs it: nothing of the new revision runs yet
                deployment.update(
                    runningCount=0,
                    pendingCount=0,
                    rolloutState="IN_PROGRESS",
                    rolloutStateReason="ECS deployment in progress.",
                )
            service.deployments[0] = deployment
        return service

    return deploying_update_service


def _service_list_tasks(list_tasks):
    def service_list_tasks(self, *args, **kwargs):
        tasks = list_tasks(self, *args, **kwargs)
        name = kwargs.get("service_name")
        return [task for task in tasks if task.group == f"service:{name.split('/')[-1]}"] if name else tasks

    return service_list_tasks


def _busy_delete_cluster(delete_cluster):
    def busy_delete_cluster(self, cluster_str):
        # moto deletes a cluster whatever runs in it; ECS refuses while a task is not STOPPED.
        from moto.ecs.exceptions import ECSException

        name = cluster_str.rsplit("/", 1)[-1]
        with _LOCK:
            active = [task for task in self.tasks.get(name, {}).values() if task.last_status != "STOPPED"]
        if active:
            raise ECSException(
                "ClusterContainsTasksException",
                f"The Cluster cannot be deleted while Tasks are active ({len(active)} task(s) not STOPPED).",
            )
        return delete_cluster(self, cluster_str)

    return busy_delete_cluster


def _counted_describe_services(describe_services):
    def counted_describe_services(self, cluster_str, names):
        services, failures = describe_services(self, cluster_str, names)
        with _LOCK:
            for service in services:
                count_service_tasks(self, service)
        return services, failures

    return counted_describe_services


def patches() -> list:
    """moto's ECS backend as this module needs it: no auto-progression, PROVISIONING at RunTask, StopTask of
    claimed tasks deferred, services counting their tasks, a deployment per revision, ListTasks by service,
    DeleteCluster refused while a task runs. Installed by ``build_app`` (``patches.py``)."""
    from moto.ecs.models import EC2ContainerServiceBackend as Backend
    from moto.ecs.models import Task

    from .patches import Patch

    return [
        Patch(Task, "advance", _never_advance),
        Patch(Backend, "run_task", _truthful_run_task),
        Patch(Backend, "stop_task", _deferred_stop_task),
        Patch(Backend, "list_tasks", _service_list_tasks),
        Patch(Backend, "describe_services", _counted_describe_services),
        Patch(Backend, "update_service", _deploying_update_service),
        Patch(Backend, "delete_cluster", _busy_delete_cluster),
    ]


def _revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]  # family:revision, whichever form the ARN was given in


def _claimed_tasks(backend, service) -> list:
    """The service's tasks a runtime runs (registered through the control endpoint)."""
    return [
        task
        for task in backend.tasks.get(service.cluster_name, {}).values()
        if task.group == f"service:{service.name}" and getattr(task, "dagster_ecs_claimed", False)
    ]


# What a deployment listed for an older revision still running does not take from the PRIMARY one.
DEPLOYMENT_OWN = ("id", "rolloutState", "rolloutStateReason", "failedTasks")


def count_service_tasks(backend, service) -> None:
    """A service a runtime runs: its counts and deployments from its tasks (moto's own numbers otherwise)."""
    tasks = _claimed_tasks(backend, service)
    if not tasks or not service.deployments:
        return
    alive = [task for task in tasks if task.last_status != "STOPPED"]
    running = [task for task in alive if task.last_status == "RUNNING"]
    primary_revision = _revision(service.task_definition)
    primary = service.deployments[0]
    mine = [task for task in running if _revision(task.task_definition_arn) == primary_revision]
    in_service = [task for task in mine if _healthy_enough(backend, task)]
    others: dict[str, int] = {}
    for task in running:
        if _revision(task.task_definition_arn) != primary_revision:
            others[task.task_definition_arn] = others.get(task.task_definition_arn, 0) + 1
    service.running_count = len(running)
    pending = len(alive) - len(running)
    service.pending_count = pending
    done = len(in_service) >= service.desired_count and not others
    failed = _failed_tasks(tasks, primary)
    primary.update(
        {
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": service.desired_count,
            "runningCount": len(mine),
            "pendingCount": pending,
            "failedTasks": len(failed),
        }
    )
    final = getattr(service, "dagster_ecs_failed", None) == primary["id"]  # FAILED is final, as on ECS
    if not final:
        words = "completed" if done else "in progress"
        state = "COMPLETED" if done else "IN_PROGRESS"
        primary.update(rolloutState=state, rolloutStateReason=f"ECS deployment {primary['id']} {words}.")
    if done and not final:
        service.dagster_ecs_completed = service.task_definition  # where a later failed deployment rolls back to
    # The older deployments: one per revision still running, and a FAILED one until its rollback completes. Each
    # keeps its id and state from one DescribeServices to the next.
    kept = {deployment["taskDefinition"]: deployment for deployment in service.deployments[1:]}
    failing = {arn for arn, deployment in kept.items() if deployment.get("rolloutState") == "FAILED" and not done}
    older = []
    for arn in sorted((set(others) | failing) - {service.task_definition}):
        deployment = kept.get(arn) or {
            **{k: v for k, v in primary.items() if k not in DEPLOYMENT_OWN},
            "id": f"ecs-svc/{zlib.crc32(arn.encode())}",
        }
        deployment.update(status="ACTIVE", taskDefinition=arn, desiredCount=0, runningCount=others.get(arn, 0))
        deployment.update(pendingCount=0)
        older.append(deployment)
    service.deployments[1:] = older
    if not final and not done and _circuit_breaker_trips(service, failed):
        _trip(service, primary, len(failed))
        count_service_tasks(backend, service)  # the rollback's deployment counted as any other


# The stoppedReasons of a task that failed (what the runtime reports); a task stopped by a deployment, a scale-in,
# StopTask or the runtime itself did not.
FAILURE_REASONS = (
    "Essential container in task exited",
    "Task failed container health checks",
    "CannotStartContainerError",
    "ResourceInitializationError",
)


def _failed_tasks(tasks, deployment: dict) -> list:
    """The deployment's tasks (those it started) that failed."""
    return [
        task
        for task in tasks
        if task.last_status == "STOPPED"
        and task.started_by == deployment.get("id")
        and (task.stopped_reason or "").startswith(FAILURE_REASONS)
    ]


def _circuit_breaker_trips(service, failed: list) -> bool:
    """ECS's deployment circuit breaker: on, watching (the deployment never completed), and as many failed tasks as
    its threshold (half the desired count, at least 3, at most 200)."""
    breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
    threshold = min(200, max(3, math.ceil(service.desired_count / 2)))
    if not breaker.get("enable") or len(failed) < threshold:
        return False
    completed = getattr(service, "dagster_ecs_completed", None)
    if completed and _revision(completed) == _revision(service.task_definition):
        return False  # this deployment completed: its later failures are replaced, not rolled back
    return not breaker.get("rollback") or completed is not None  # nothing to go back to: its tasks are retried


def _trip(service, failing: dict, failed: int) -> None:
    """The circuit breaker trips: the failing deployment FAILED; with ``rollback``, a new PRIMARY deployment of the
    last completed revision, as ECS does (and its service events say)."""
    breaker = service.deployment_configuration["deploymentCircuitBreaker"]
    now = _now()
    service.dagster_ecs_failed = failing["id"]
    failing.update(
        failedTasks=failed,
        rolloutState="FAILED",
        rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.",
        updatedAt=now,
    )
    events = [f"(service {service.name}) (deployment {failing['id']}) deployment failed: tasks failed to start."]
    if breaker.get("rollback"):
        target = service.dagster_ecs_completed  # the last COMPLETED deployment's, another revision
        service.task_definition = target
        rollback = {
            **failing,
            "id": f"ecs-svc/{secrets.randbelow(10**19):019d}",
            "status": "PRIMARY",
            "taskDefinition": target,
            "runningCount": 0,
            "pendingCount": 0,
            "failedTasks": 0,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment detected failure. Rolling back to {_revision(target)}.",
            "createdAt": now,
            "updatedAt": now,
        }
        failing["status"] = "ACTIVE"
        service.deployments[:] = [rollback, failing, *service.deployments[1:]]
        events.append(f"(service {service.name}) rolling back to {_revision(target)}.")
    for message in events:
        service.events.insert(0, {"id": secrets.token_hex(16), "createdAt": now, "message": message})


def _healthy_enough(backend, task) -> bool:
    """Whether a RUNNING task counts toward its deployment's completion: ECS waits for a task whose definition
    has an essential container with a ``healthCheck`` to be HEALTHY (UNKNOWN until a check counts)."""
    from moto.ecs.exceptions import TaskDefinitionNotFoundException

    try:
        definition = backend.describe_task_definition(task.task_definition_arn)
    except TaskDefinitionNotFoundException:  # no definition to read a health check from: nothing to wait for
        return True
    checked = any(c.get("healthCheck") and c.get("essential", True) for c in definition.container_definitions)
    return not checked or getattr(task, "health_status", None) == "HEALTHY"


def report(config: dict, **body) -> dict:
    """The runtime's report to ``TaskControl`` (``config``: the runtime's, with endpoint, region, cluster)."""
    import urllib.request

    payload = json.dumps({"region": config["region"], "cluster": config["cluster"], **body}).encode()
    request = urllib.request.Request(  # noqa: S310 - the emulator's own loopback URL (http://127.0.0.1:port)
        config["endpoint"].rstrip("/") + TASK_PATH, payload, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the emulator's loopback URL
        return json.load(answer)


class TaskControl:
    """WSGI application answering ``TASK_PATH`` (the runtime's reports) in front of the emulator."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != TASK_PATH:
            return self.app(environ, start_response)
        from .wsgi import json_response, request_json

        status, payload = "200 OK", {}
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise ValueError("POST a JSON object")
            request = request_json(environ)
            payload = self.handle(request)
        except KeyError as exc:
            status, payload = "404 Not Found", {"error": str(exc).strip("'\"")}
        except (ValueError, TypeError) as exc:
            status, payload = "400 Bad Request", {"error": str(exc)}
        return json_response(start_response, status, payload)

    @staticmethod
    def handle(request: dict) -> dict:
        account = request.get("account", "123456789012")
        region = request["region"]
        backend = _backend(account, region)
        with _LOCK:
            if "register" in request:
                spec = request["register"]
                (task,) = backend.run_task(
                    request["cluster"],
                    spec["taskDefinition"],
                    1,
                    spec.get("overrides"),
                    spec.get("startedBy", ""),
                    spec.get("tags"),
                    "FARGATE",
                    networking_configuration=spec.get("networkConfiguration"),
                    group=spec.get("group"),
                    platform_version="LATEST",
                )
                set_state(task)
            else:
                task = _find(backend, request["cluster"], request["task"])
                set_state(
                    task,
                    request.get("lastStatus"),
                    request.get("exitCode"),
                    request.get("stoppedReason"),
                    request.get("healthStatus"),
                )
            return {
                "taskArn": task.task_arn,
                "lastStatus": task.last_status,
                "desiredStatus": task.desired_status,
                "stoppedReason": task.stopped_reason,
            }

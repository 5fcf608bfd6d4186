"""ECS (moto's ``ecs``)."""

from __future__ import annotations

import copy
import json

from ..patches import Patch
from ..wsgi import moto_scope, replace_body, request_json
from .base import Rewrite, Shim

PREFIX = "AmazonEC2ContainerServiceV20141113."


class EcsClusterCapacityProviders(Rewrite):
    """ECS ``DescribeClusters`` omits ``capacityProviders`` and ``defaultCapacityProviderStrategy``.

    moto: leaves both keys out of a cluster that has none.
    AWS: always returns both lists (empty when unused).
    Trips: ``community.aws.ecs_cluster``, which reads ``cluster["capacityProviders"]`` on a re-run
    and crashes with ``KeyError``.
    moto issue: none found.
    """

    name = "ecs-cluster-capacity-providers"
    summary = "ECS DescribeClusters always lists capacityProviders (community.aws.ecs_cluster re-run)"

    def matches(self, environ):
        return environ.get("HTTP_X_AMZ_TARGET", "").endswith(".DescribeClusters")

    def after(self, exchange):
        payload = exchange.json()
        for cluster in payload.get("clusters", []):
            cluster.setdefault("capacityProviders", [])
            cluster.setdefault("defaultCapacityProviderStrategy", [])
        exchange.set_json(payload)


class EcsEmptyTagLists(Rewrite):
    """ECS omits empty ``tags`` lists where AWS returns ``[]``.

    moto: leaves ``tags`` out of ``ListTagsForResource`` for an untagged resource, and out of
    ``DescribeServices`` with ``include=["TAGS"]``.
    AWS: answers ``{"tags": []}``, and includes ``tags`` in each service when asked to.
    Trips: ``community.aws.ecs_tag``, which reads ``["tags"]`` and fails with ``KeyError: 'tags'``
    when it first tags a cluster.
    moto issue: none found.
    """

    name = "ecs-empty-tag-lists"
    summary = "ECS ListTagsForResource/DescribeServices always carry a tags list (community.aws.ecs_tag)"

    targets = (PREFIX + "ListTagsForResource", PREFIX + "DescribeServices")

    def after(self, exchange):
        payload = exchange.json()
        if exchange.target.endswith("ListTagsForResource"):
            payload.setdefault("tags", [])
        elif "TAGS" in (exchange.request_json().get("include") or []):
            for service in payload.get("services", []):
                service.setdefault("tags", [])
        exchange.set_json(payload)


class EcsCreateServiceSettings(Rewrite):
    """ECS ``CreateService`` drops settings that moto's ``UpdateService`` keeps.

    moto: CreateService ignores ``deploymentConfiguration`` (rolling percentages and the deployment
    circuit breaker), ``healthCheckGracePeriodSeconds`` and ``enableExecuteCommand``, so
    DescribeServices reports none of them.
    AWS: stores them on the new service and reports them.
    Trips: ``community.aws.ecs_service``, which sees a difference and updates the service on the
    next run (a second run is never ``changed=0``).
    moto issue: none found.
    We store them on the service moto created.
    """

    name = "ecs-create-service-settings"
    summary = "ECS CreateService keeps deploymentConfiguration/healthCheckGracePeriodSeconds (ecs_service re-run)"
    _settings = {
        "deploymentConfiguration": "deployment_configuration",
        "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
        "enableExecuteCommand": "enable_execute_command",
    }

    targets = (PREFIX + "CreateService",)

    def after(self, exchange):
        request = exchange.request_json()
        wanted = {key: request[key] for key in self._settings if key in request}
        if not wanted:
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


class EcsServiceTaskDefinitionArn(Rewrite):
    """ECS ``UpdateService`` keeps the task definition as given where AWS keeps its ARN.

    moto 5.2.5: resolves ``taskDefinition`` on CreateService but stores the string as given on
    UpdateService, so after a rollout with ``family:revision`` the service reports
    ``dagster-ecs-webserver:2``.
    AWS: resolves ``family``, ``family:revision`` or an ARN, and every later DescribeServices
    answers the full ARN.
    Trips: ``community.aws.ecs_service`` (given ``family:revision`` by the ecs role) leaves the short
    name behind; a playbook that reads the service (the ecs stage's lookup, the verify stage) then
    compares it with the ARN the local runtime runs.
    moto issue: none found.
    We resolve the name before moto stores it.
    """

    name = "ecs-service-task-definition-arn"
    summary = "ECS UpdateService stores the task definition's ARN, as DescribeServices reports it on AWS"

    targets = (PREFIX + "UpdateService",)

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


def _memory_counted_as_zero(original):
    """moto's ``_calculate_task_resource_requirements``, counting a container without memory as 0."""
    calculate = getattr(original, "__func__", original)  # a staticmethod in moto's class

    def requirements(task_definition):
        counted = copy.copy(task_definition)
        counted.container_definitions = [
            container
            if {"memory", "Memory", "memoryReservation", "MemoryReservation"} & set(container)
            else {**container, "memory": 0}
            for container in task_definition.container_definitions
        ]
        return calculate(counted)

    return staticmethod(requirements)


class EcsRunTaskContainerMemory(Shim):
    """ECS ``RunTask`` needs a container-level memory that Fargate does not.

    moto 5.2.5: adds each container's ``memory`` (or ``memoryReservation``) to the task's
    requirements and fails with a TypeError (HTTP 500) when a container has neither.
    AWS: on Fargate the task-level ``memory`` is enough; a container may leave both out (the run
    task definition's ``run`` container does).
    Trips: the run launcher's RunTask of ``<project>-run`` (``tests/unit/test_launcher.py``).
    moto issue: https://github.com/getmoto/moto/issues/7272 (closed; the calculation still expects
    a container memory, as its last comment shows).
    We count a container without one as 0, as the other resources are; the stored task definition
    is left as registered (DescribeTaskDefinition shows no invented memory, so the ecs stage's
    re-run still compares equal). A patch of moto's ECS backend (``patches.py``).
    """

    name = "ecs-run-task-container-memory"
    summary = "ECS RunTask of a Fargate task definition whose containers set no memory of their own (run tasks)"

    def patches(self):
        from moto.ecs.models import EC2ContainerServiceBackend

        return [Patch(EC2ContainerServiceBackend, "_calculate_task_resource_requirements", _memory_counted_as_zero)]


class EcsTaskLifecycle(Shim):
    """ECS tasks advance by a timer in moto; on AWS they report what their container did.

    moto 5.2.5: starts a ``RunTask`` task RUNNING and moves it one step towards STOPPED on every
    ``DescribeTasks`` (exit code 0, no reason); ``StopTask`` stops it at once; a service reports
    its desired count as running and one deployment for life; ``ListTasks(serviceName=)`` is
    not filtered; ``DeleteCluster`` deletes a cluster whatever runs in it; every container is
    ``healthStatus: HEALTHY``, checked or not.
    AWS: a task starts PROVISIONING, is RUNNING while its container runs and STOPPED with the
    container's exit code and ``stoppedReason``; StopTask sets the desired status and the task
    stops when its container did; a service counts its tasks and starts a deployment per revision;
    a task's and its container's ``healthStatus`` are UNKNOWN until its health check counts.
    Trips: the run launcher and run monitoring (a run would stop after four looks), the verify
    stage's ECS checks (``stack_health``), dagster-aws's ``get_task_kwargs_from_current_task``,
    the local runtime (``runtime.py``, ``oneoff.py``).
    moto issue: the timer is moto's own design, https://github.com/getmoto/moto/issues/6856
    (https://github.com/getmoto/moto/pull/6857).
    ``ecs_tasks.py`` patches moto's ECS backend (``patches``, below) so a task stays where the
    runtime that runs it reports it, and ``build_app`` mounts its control endpoint
    (``ecs_tasks.TaskControl``) the runtime reports through.
    """

    name = "ecs-task-lifecycle"
    summary = "ECS tasks report the state the local runtime gives them (no timer); StopTask waits for the task"

    def patches(self):
        from .. import ecs_tasks

        return ecs_tasks.patches()

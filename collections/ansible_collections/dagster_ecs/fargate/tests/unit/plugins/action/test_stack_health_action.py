"""The stack_health action plugin: repeat the module until healthy or timeout (fake clock, no sleeping)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.action import stack_health as action_plugin
from ansible_collections.dagster_ecs.fargate.plugins.modules import stack_health
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import Reply, run_module

MODULE = "dagster_ecs.fargate.stack_health"


def unhealthy(detail="HTTP 503: loading"):
    return {
        "changed": False,
        "healthy": False,
        "unhealthy": ["health_endpoint"],
        "checks": {"health_endpoint": {"ok": False, "detail": detail}, "daemon": {"ok": True, "detail": "1"}},
    }


HEALTHY = {"changed": False, "healthy": True, "unhealthy": [], "checks": {"daemon": {"ok": True, "detail": "1"}}}


@pytest.fixture
def shown(monkeypatch):
    lines = []
    monkeypatch.setattr(action_plugin, "display", SimpleNamespace(display=lines.append))
    return lines


def action(args, results, resolved_action=MODULE):
    """The plugin for a task with ``args``; its module runs answer ``results`` in turn (the last repeats)."""
    task = SimpleNamespace(
        args=args, resolved_action=resolved_action, action=MODULE, async_val=0, check_mode=False, diff=False
    )
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/nonexistent"))
    plugin = action_plugin.ActionModule(task, connection, play_context=None, loader=None, templar=None)
    plugin.executed = []

    def _execute_module(module_name, module_args, task_vars):
        plugin.executed.append((module_name, dict(module_args)))
        result = results[min(len(plugin.executed), len(results)) - 1]
        return dict(result) if isinstance(result, dict) else result(module_args)

    plugin._execute_module = _execute_module
    return plugin


def test_healthy_at_once(clock, shown):
    plugin = action({"url": "http://x", "timeout": 60}, [HEALTHY])
    result = plugin.run(task_vars={"inventory_hostname": "h"})
    assert result["healthy"] and result["attempts"] == 1 and result["changed"] is False
    assert "failed" not in result
    assert plugin.executed == [(MODULE, {"url": "http://x", "timeout": 60, "fail_on_unhealthy": False})]
    assert clock.sleeps == [] and shown == []


def test_waits_until_healthy_printing_progress(clock, shown):
    args = {"url": "http://x", "timeout": 100, "interval": 15}
    plugin = action(args, [unhealthy(), unhealthy("HTTP 502: bad gateway"), HEALTHY])
    result = plugin.run(task_vars={"inventory_hostname": "h"})
    assert result["healthy"] and result["attempts"] == 3
    assert clock.sleeps == [1, 2]
    assert shown == [
        "[h] waiting for Dagster (0s of 100s, attempt 1): health_endpoint: HTTP 503: loading",
        "[h] waiting for Dagster (1s of 100s, attempt 2): health_endpoint: HTTP 502: bad gateway",
    ]
    assert args == {"url": "http://x", "timeout": 100, "interval": 15}  # the task's args are not changed


def test_waits_double_up_to_the_interval(clock, shown):
    plugin = action({"url": "http://x", "timeout": 100, "interval": 10}, [unhealthy()] * 7 + [HEALTHY])
    result = plugin.run(task_vars={})
    assert result["healthy"] and result["attempts"] == 8
    assert clock.sleeps == [1, 2, 4, 8, 10, 10, 10]


def test_times_out_naming_what_is_unhealthy(clock, shown):
    plugin = action({"url": "http://x", "timeout": 25, "interval": 10}, [unhealthy()])
    result = plugin.run(task_vars={})
    assert result["failed"] and result["attempts"] == 6
    assert result["msg"] == "Dagster is not healthy after 25s (timeout 25s): health_endpoint: HTTP 503: loading"
    assert clock.sleeps == [1, 2, 4, 8, 10]
    assert shown[0].startswith("[] waiting for Dagster")


def test_timeout_zero_checks_once(clock, shown):
    result = action({"url": "http://x", "timeout": "0"}, [unhealthy()]).run(task_vars=None)
    assert result["failed"] and result["attempts"] == 1 and clock.sleeps == []


def test_interval_is_at_least_one_second(clock, shown):
    result = action({"url": "http://x", "timeout": 3, "interval": 0}, [unhealthy(), HEALTHY]).run(task_vars={})
    assert result["healthy"] and clock.sleeps == [1]


def test_module_failure_stops_at_once(clock, shown):
    failure = {"failed": True, "msg": "Failed to describe the ECS services: AccessDenied"}
    plugin = action({"url": "http://x"}, [failure, HEALTHY])
    result = plugin.run(task_vars={})
    assert result["failed"] and result["msg"] == failure["msg"] and result["attempts"] == 1
    assert len(plugin.executed) == 1


def test_default_module_name(clock, shown):
    plugin = action({"url": "http://x"}, [HEALTHY], resolved_action=None)
    plugin.run(task_vars={})
    assert plugin.executed[0][0] == MODULE


def test_fail_on_unhealthy_false_is_honoured_at_timeout(clock, shown):
    """The option documents that the plugin turns it off *between* attempts; set by the user, the last
    unhealthy result is returned without failing the task."""
    plugin = action({"url": "http://x", "timeout": 0, "fail_on_unhealthy": False}, [unhealthy()])
    result = plugin.run(task_vars={})
    assert not result.get("failed")
    assert result["healthy"] is False and result["unhealthy"] == ["health_endpoint"]


def test_with_the_real_module_and_a_server(clock, shown, http_server):
    """The module really runs (in-process) against a loopback Dagster that becomes healthy."""
    http_server.routes[("GET", "/health")] = [Reply(503, "starting"), Reply(200, "OK")]
    http_server.routes[("POST", "/graphql")] = Reply(
        200,
        {
            "data": {
                "workspaceOrError": {
                    "locationEntries": [
                        {
                            "name": "dags",
                            "loadStatus": "LOADED",
                            "locationOrLoadError": {"__typename": "RepositoryLocation"},
                        }
                    ]
                },
                "instance": {
                    "daemonHealth": {"allDaemonStatuses": [{"daemonType": "S", "required": True, "healthy": True}]}
                },
                "assetNodes": [],
            }
        },
    )
    plugin = action(
        {"url": http_server.url, "timeout": 60, "interval": 5},
        [lambda module_args: run_module(stack_health, module_args)],
    )
    result = plugin.run(task_vars={"inventory_hostname": "localhost"})
    assert result["healthy"] and result["attempts"] == 2
    assert shown == ["[localhost] waiting for Dagster (0s of 60s, attempt 1): health_endpoint: HTTP 503: starting"]

# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for stack_health: repeat the module's checks, printing progress, until healthy or timeout.

The waits between checks double from 1 s up to the task's ``interval``: a deployment that is healthy a few
seconds after the rollout (the offline rehearsal, a DAG-only change) is confirmed then, not a whole interval
later, and a long wait still checks only once per ``interval``.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        args = dict(self._task.args)
        timeout = int(args.get("timeout", 600))
        interval = max(1, int(args.get("interval", 10)))
        fail_on_unhealthy = boolean(args.get("fail_on_unhealthy", True), strict=False)
        args["fail_on_unhealthy"] = False
        module = self._task.resolved_action or "dagster_ecs.fargate.stack_health"
        host = task_vars.get("inventory_hostname", "") if task_vars else ""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            result = self._execute_module(module_name=module, module_args=args, task_vars=task_vars)
            if result.get("failed") or result.get("healthy"):
                break
            elapsed = time.monotonic() - started
            waiting = "; ".join(f"{name}: {result['checks'][name]['detail']}" for name in result.get("unhealthy", []))
            wait = min(interval, 2 ** (attempt - 1))
            if elapsed + wait > timeout:
                result["failed"] = fail_on_unhealthy
                result["msg"] = f"Dagster is not healthy after {elapsed:.0f}s (timeout {timeout}s): {waiting}"
                break
            display.display(
                f"[{host}] waiting for Dagster ({elapsed:.0f}s of {timeout}s, attempt {attempt}): {waiting}"
            )
            time.sleep(wait)
        result["attempts"] = attempt
        result["changed"] = False
        return result

"""Fixtures of the action plugins' tests (controller code: ``ansible-test units`` runs them apart from the modules')."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.action import stack_health as stack_health_action


@pytest.fixture
def clock(clock, monkeypatch):
    """One fake time for module_utils.common (wait_until) and the stack_health action plugin's loop."""
    monkeypatch.setattr(stack_health_action, "time", clock)
    return clock

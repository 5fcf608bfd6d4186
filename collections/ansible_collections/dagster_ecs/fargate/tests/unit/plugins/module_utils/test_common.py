"""module_utils.common: retries, AWS call wrapper, tag convergence, waiting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.dagster_ecs.fargate.plugins.module_utils import common
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import client_error
from botocore.exceptions import EndpointConnectionError


class Failed(Exception):
    pass


class FakeModule:
    """What the helpers use of an AnsibleAWSModule."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.clients = []

    def fail_json(self, **kwargs):
        raise Failed(kwargs)

    def fail_json_aws(self, exception, msg):
        raise Failed({"msg": msg, "exception": exception})

    def client(self, service, retry_decorator=None, **extra):
        self.clients.append((service, retry_decorator, extra))
        return SimpleNamespace(service=service)


def test_client_attaches_the_retry_decorator_and_passes_extra_parameters():
    module = FakeModule()
    assert common.client(module, "s3", config="cfg").service == "s3"
    service, decorator, extra = module.clients[0]
    assert service == "s3" and callable(decorator) and extra == {"config": "cfg"}


def failing_twice_with(code):
    """A call, under the retry decorator, that fails twice with the error ``code``; and its list of attempts."""
    attempts = []

    @common.retry_decorator(retries=3, delay=1, max_delay=2)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise client_error("Op", code)
        return "ok"

    return flaky, attempts


def test_retry_decorator_retries_the_extra_codes(monkeypatch):
    sleeps = []
    monkeypatch.setattr(cloud, "time", SimpleNamespace(sleep=sleeps.append))
    for code in common.EXTRA_RETRY_CODES + ["RequestLimitExceeded"]:
        flaky, attempts = failing_twice_with(code)
        assert flaky() == "ok" and len(attempts) == 3, code
    assert all(0 <= s <= 2 for s in sleeps)


def test_retry_decorator_does_not_retry_other_errors():
    attempts = []

    @common.retry_decorator()
    def denied():
        attempts.append(1)
        raise client_error("Op", "AccessDeniedException")

    with pytest.raises(Exception, match="AccessDeniedException"):
        denied()
    assert attempts == [1]


def test_an_api_the_endpoint_does_not_serve_fails_at_once():
    """LocalStack Community answers the APIs of its paid plan with HTTP 501 InternalFailure: not transient."""
    attempts = []

    @common.retry_decorator()
    def unlicensed():
        attempts.append(1)
        raise client_error("DescribeFileSystems", "InternalFailure", "not included in your license plan", status=501)

    with pytest.raises(Exception, match="InternalFailure"):
        unlicensed()
    assert attempts == [1]


def test_call_passes_aws_retry_and_fails_naming_what():
    seen = {}

    def describe(**kwargs):
        seen.update(kwargs)
        return {"ok": True}

    aws_client = SimpleNamespace(describe=describe)
    assert common.call(FakeModule(), aws_client, "describe it", "describe", Name="x") == {"ok": True}
    assert seen == {"aws_retry": True, "Name": "x"}

    for error in (client_error("Describe", "AccessDenied"), EndpointConnectionError(endpoint_url="https://x")):

        def broken(error=error, **kwargs):
            raise error

        with pytest.raises(Failed) as failed:
            common.call(FakeModule(), SimpleNamespace(describe=broken), "describe it", "describe")
        assert failed.value.args[0]["msg"] == "Failed to describe it"
        assert failed.value.args[0]["exception"] is error


def test_call_lets_other_exceptions_through():
    def bug(**kwargs):
        raise KeyError("x")

    with pytest.raises(KeyError):
        common.call(FakeModule(), SimpleNamespace(describe=bug), "describe it", "describe")


def test_changes_accumulate_only_what_changed():
    changes = common.Changes()
    assert changes.add(False, {"before": {"a": 1}, "after": {"a": 2}}) is False
    assert not changes.changed and changes.diff == {"before": {}, "after": {}}
    assert changes.add(True, {"before": {"a": 1}, "after": {"a": 2}}) is True
    assert changes.add(True) is True
    changes.add(True, {"before": {"b": 1}, "after": {"b": 2}})
    assert changes.changed and changes.diff == {"before": {"a": 1, "b": 1}, "after": {"a": 2, "b": 2}}


def test_plan_tags():
    assert common.plan_tags({"a": "1"}, None, True) == ({}, [])
    assert common.plan_tags(None, {"a": "1"}, True) == ({"a": "1"}, [])
    assert common.plan_tags({"a": "1", "b": "2"}, {"a": "3"}, True) == ({"a": "3"}, ["b"])
    assert common.plan_tags({"a": "1", "b": "2"}, {"a": "3"}, False) == ({"a": "3"}, [])


class Recorder:
    def __init__(self):
        self.calls = []

    def set(self, tags):
        self.calls.append(("set", tags))

    def remove(self, keys):
        self.calls.append(("remove", keys))


def test_apply_tags_removes_then_sets_and_diffs():
    recorder = Recorder()
    changed, diff = common.apply_tags(
        FakeModule(), {"a": "1", "b": "2"}, {"a": "3", "c": "4"}, True, recorder.set, recorder.remove
    )
    assert changed
    assert recorder.calls == [("remove", ["b"]), ("set", {"a": "3", "c": "4"})]
    assert diff == {"before": {"tags": {"a": "1", "b": "2"}}, "after": {"tags": {"a": "3", "c": "4"}}}


def test_apply_tags_in_check_mode_and_without_change():
    recorder = Recorder()
    changed, diff = common.apply_tags(
        FakeModule(check_mode=True), None, {"a": "1"}, True, recorder.set, recorder.remove
    )
    assert changed and recorder.calls == []
    assert diff == {"before": {"tags": {}}, "after": {"tags": {"a": "1"}}}
    assert common.apply_tags(FakeModule(), {"a": "1"}, {"a": "1"}, True, recorder.set, recorder.remove) == (False, {})
    assert common.apply_tags(FakeModule(), {"a": "1"}, None, True, recorder.set, recorder.remove) == (False, {})


def test_apply_tags_keeps_the_kept_keys():
    recorder = Recorder()
    changed, diff = common.apply_tags(
        FakeModule(), {"Name": "n", "a": "1"}, {}, True, recorder.set, recorder.remove, keep=("Name",)
    )
    assert changed and recorder.calls == [("remove", ["a"])]
    assert diff["after"] == {"tags": {"Name": "n"}}
    assert common.apply_tags(FakeModule(), {"Name": "n"}, {}, True, recorder.set, recorder.remove, keep=("Name",)) == (
        False,
        {},
    )


def test_wait_until_returns_the_first_truthy_value(clock):
    answers = iter([None, False, {"state": "available"}])
    assert common.wait_until(FakeModule(), lambda: next(answers), 60, delay=3) == {"state": "available"}
    assert clock.sleeps == [3, 3]


def test_wait_until_times_out(clock):
    with pytest.raises(Failed) as failed:
        common.wait_until(FakeModule(), lambda: None, 10, what="the thing")
    assert failed.value.args[0] == {"msg": "Timed out after 10s waiting for the thing"}
    assert sum(clock.sleeps) == 10


def test_wait_until_checks_at_least_once(clock):
    assert common.wait_until(FakeModule(), lambda: "done", 0) == "done"
    assert clock.sleeps == []


def test_camel_tags():
    assert common.camel_tags({"a": "1", "b": "2"}) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    assert common.camel_tags(None) == []


def test_tag_args_match_amazon_aws():
    assert common.TAG_ARGS == {
        "tags": {"type": "dict", "aliases": ["resource_tags"]},
        "purge_tags": {"type": "bool", "default": True},
    }

"""The ``plain_http_refusal`` filter: module_utils.plain_http's rule in a template (the dags role's check)."""

from __future__ import annotations

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.dagster_ecs.fargate.plugins.filter import plain_http_refusal as plugin
from ansible_collections.dagster_ecs.fargate.plugins.module_utils import plain_http

refusal = plugin.plain_http_refusal

ALB = "http://dagster-ecs-alb-123456.ap-southeast-2.elb.amazonaws.com"
SAFE = ["https://dagster.example.com", "http://127.0.0.1:8080", "http://localhost/", "http://[::1]:8080", "", None]
REFUSED = [ALB, "http://10.0.0.5:8080", "HTTP://Dagster.Example.com", "http://127.0.0.1.nip.io", "http://[::1/x"]


@pytest.mark.parametrize("url", SAFE)
def test_https_loopback_and_empty_urls_give_an_empty_string(url):
    assert refusal(url) == ""


@pytest.mark.parametrize("url", REFUSED)
def test_the_modules_rule_and_message_written_once(url):
    """The filter says what module_utils.plain_http says (dag_notify and stack_health refuse with it), less the
    parenthesis naming a module option: in a play the opt-out is the inventory's variable."""
    message = refusal(url)
    assert message == plain_http.plain_http_refusal(url, opt_out=None)
    assert message.startswith(f"Refusing to send the basic-auth credentials to {url}:")
    assert "module" not in message


def test_plain_http_elsewhere_names_the_url_and_both_fixes():
    message = refusal(ALB)
    assert message.startswith(f"Refusing to send the basic-auth credentials to {ALB}: plain HTTP")
    for fix in ("loadbalancer_certificate_arn", "aws acm request-certificate", "dagster_ecs_allow_plain_http: true"):
        assert fix in message
    assert message.endswith("set dagster_ecs_allow_plain_http: true in the inventory.")


@pytest.mark.parametrize("allow", [True, "true", "yes", "on", 1])
@pytest.mark.parametrize("url", REFUSED)
def test_the_opt_out_accepts_plain_http_as_the_modules_bool_option_does(url, allow):
    assert refusal(url, allow) == ""


@pytest.mark.parametrize("allow", [False, "false", "no", 0])
def test_a_false_opt_out_refuses(allow):
    assert refusal(ALB, allow).startswith("Refusing")


def test_what_is_named():
    assert refusal(ALB, what="the token").startswith(f"Refusing to send the token to {ALB}: plain HTTP")


def test_an_opt_out_that_is_not_a_boolean_is_an_error():
    with pytest.raises(AnsibleFilterError, match="allow_plain_http must be a boolean"):
        refusal(ALB, "maybe")


@pytest.mark.parametrize("url", [8080, ["http://10.0.0.5"], {"url": ALB}])
def test_a_url_that_is_not_a_string_is_an_error(url):
    with pytest.raises(AnsibleFilterError, match="needs a URL"):
        refusal(url)


def test_registered_as_a_jinja_filter_with_the_documented_positional_argument():
    filters = plugin.FilterModule().filters()
    assert filters == {"plain_http_refusal": refusal}
    environment = jinja2.Environment()  # noqa: S701 - renders text, not HTML
    environment.filters["dagster_ecs.fargate.plain_http_refusal"] = refusal
    template = environment.from_string("{{ url | dagster_ecs.fargate.plain_http_refusal(allow) }}")
    assert template.render(url=ALB, allow=False) == refusal(ALB)
    assert template.render(url=ALB, allow=True) == ""

"""Pure parts of the compatibility layer."""

from __future__ import annotations

from dagster_ecs_emulator.compat import S3PolicySecureTransport as Shim

DENY_HTTP = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": "arn:aws:s3:::b/*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_tls_only_deny_does_not_apply_to_tls_requests():
    assert not Shim.applies(DENY_HTTP)
    assert Shim.evaluated({"Statement": [DENY_HTTP]})["Statement"] == []


def test_deny_of_tls_requests_still_applies():
    deny_tls = dict(DENY_HTTP, Condition={"Bool": {"aws:SecureTransport": ["true"]}})
    assert Shim.applies(deny_tls)
    assert "Condition" not in Shim.evaluated({"Statement": deny_tls})["Statement"][0]


def test_unknown_context_key_fails_bool_but_not_bool_if_exists():
    assert not Shim.applies({"Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}})
    assert Shim.applies({"Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}})


def test_other_operators_are_left_to_moto():
    statement = dict(DENY_HTTP, Condition={"StringEquals": {"aws:PrincipalAccount": "1"}})
    assert Shim.evaluated({"Statement": [statement]})["Statement"][0]["Condition"] == statement["Condition"]

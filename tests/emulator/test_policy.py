"""The IAM evaluator the call-proof test judges recorded calls with (dagster_ecs_emulator.policy)."""

from __future__ import annotations

import pytest
from dagster_ecs_emulator.policy import Unsupported, decide, granted_actions

RUN = "arn:aws:ecs:ap-southeast-2:123456789012:task-definition/p-run:3"
CLUSTER = "arn:aws:ecs:ap-southeast-2:123456789012:cluster/p"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Run",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": "arn:aws:ecs:ap-southeast-2:123456789012:task-definition/p-run:*",
            "Condition": {"ArnEquals": {"ecs:cluster": CLUSTER}},
        },
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"},
        {
            "Sid": "Pass",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "arn:aws:iam::123456789012:role/p-run-task",
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ],
}


def test_an_action_on_its_resource_with_its_condition_is_allowed():
    assert decide([POLICY], "ecs:RunTask", RUN, {"ecs:cluster": CLUSTER}) == (True, "allowed by Run")
    assert decide([POLICY], "ECS:runtask", RUN, {"ecs:cluster": CLUSTER})[0], "actions match case-insensitively"


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("ecs:RunTask", RUN, {}),  # the condition's key is absent: the condition fails
        ("ecs:RunTask", RUN, {"ecs:cluster": CLUSTER + "-other"}),
        ("ecs:RunTask", RUN.replace("p-run", "p-daemon"), {"ecs:cluster": CLUSTER}),
        ("ecs:StopTask", RUN, {"ecs:cluster": CLUSTER}),
        ("s3:GetObject", "arn:aws:s3:::B/key", {}),  # resources match case-sensitively
        ("s3:GetObject", "arn:aws:s3:::b", {}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/p-run-task", {"iam:PassedToService": "lambda.amazonaws.com"}),
    ],
)
def test_anything_else_is_implicitly_denied(action, resource, context):
    assert decide([POLICY], action, resource, context) == (False, "no statement allows it (implicit deny)")


def test_an_explicit_deny_wins_and_wildcards_match():
    deny = {"Statement": {"Sid": "No", "Effect": "Deny", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/secret?"}}
    assert decide([POLICY, deny], "s3:GetObject", "arn:aws:s3:::b/secret1") == (False, "denied by No")
    assert decide([POLICY, deny], "s3:GetObject", "arn:aws:s3:::b/secret12")[0]


def test_if_exists_and_negated_operators():
    statement = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringNotEqualsIfExists": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
    }
    assert decide([{"Statement": [statement]}], "x:Y", "*", {})[0]
    assert decide([{"Statement": [statement]}], "x:Y", "*", {"aws:RequestedRegion": "ap-southeast-2"})[0]
    assert not decide([{"Statement": [statement]}], "x:Y", "*", {"aws:RequestedRegion": "us-east-1"})[0]


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::${aws:username}/*"},
        {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"k": "1"}}},
        {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"k": "v"}}},
    ],
)
def test_grammar_it_does_not_know_is_refused_not_guessed(statement):
    with pytest.raises(Unsupported):
        decide([{"Statement": [statement]}], "s3:GetObject", "arn:aws:s3:::u/k", {"k": "v"})


def test_granted_actions_name_their_statement():
    assert granted_actions([POLICY]) == {("Run", "ecs:RunTask"), ("Read", "s3:GetObject"), ("Pass", "iam:PassRole")}


def test_get_caller_identity_needs_no_permission():
    assert decide([], "sts:GetCallerIdentity", "*") == (True, "needs no permission")

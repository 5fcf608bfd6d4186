"""Evaluate a recorded call against IAM policy documents, as IAM does for identity-based policies.

Enough of IAM's evaluation logic for the project's own policies, and strict where it is not enough:
an explicit ``Deny`` wins, then any ``Allow`` whose ``Action``/``NotAction``, ``Resource``/``NotResource``
and every ``Condition`` match; nothing else is allowed. Actions match case-insensitively, resources
case-sensitively, both with ``*`` and ``?`` wildcards. Conditions: the ``String*``, ``Arn*`` and
``Bool`` operators, each with ``...IfExists``; a key the request's context lacks fails the condition
(unless ``IfExists``). An operator or a policy variable (``${aws:...}``) it does not know raises
:class:`Unsupported` rather than guess, so a policy it cannot judge fails the test that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class Unsupported(ValueError):
    """The policy uses IAM grammar this evaluator does not implement."""


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case_sensitive: bool) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one; everything else literal."""
    if "${" in pattern:
        raise Unsupported(f"policy variable in {pattern!r}")
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.fullmatch(expression, value, flags) is not None


def _matches_any(patterns, value: str, case_sensitive: bool) -> bool:
    return any(_glob(pattern, value, case_sensitive) for pattern in _list(patterns))


_OPERATORS = {
    "StringEquals": lambda want, got: want == got,
    "StringNotEquals": lambda want, got: want != got,
    "StringEqualsIgnoreCase": lambda want, got: want.lower() == got.lower(),
    "StringLike": lambda want, got: _glob(want, got, True),
    "StringNotLike": lambda want, got: not _glob(want, got, True),
    "ArnEquals": lambda want, got: want == got,
    "ArnLike": lambda want, got: _glob(want, got, True),
    "ArnNotEquals": lambda want, got: want != got,
    "ArnNotLike": lambda want, got: not _glob(want, got, True),
    "Bool": lambda want, got: str(want).lower() == str(got).lower(),
}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise Unsupported(f"set operator {operator}")
    if_exists = operator.endswith("IfExists")
    name = operator[: -len("IfExists")] if if_exists else operator
    if name not in _OPERATORS:
        raise Unsupported(f"condition operator {operator}")
    if key not in context:
        return if_exists
    got = str(context[key])
    wanted = [str(w) for w in _list(wanted)]
    test = _OPERATORS[name]
    # Negated operators hold when the value matches none; the others when it matches any.
    return all(test(w, got) for w in wanted) if name in _NEGATED else any(test(w, got) for w in wanted)


def _statement_matches(statement: dict, action: str, resource: str, context: dict) -> bool:
    if "NotPrincipal" in statement or "Principal" in statement:
        raise Unsupported("a resource-based statement (Principal) in an identity policy")
    if "Action" in statement:
        if not _matches_any(statement["Action"], action, case_sensitive=False):
            return False
    elif not ("NotAction" in statement and not _matches_any(statement["NotAction"], action, False)):
        return False
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], resource, case_sensitive=True):
            return False
    elif not ("NotResource" in statement and not _matches_any(statement["NotResource"], resource, True)):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, context):
                return False
    return True


def statements(documents: Iterable[dict]) -> list[dict]:
    return [statement for document in documents for statement in _list(document.get("Statement", []))]


# Calls IAM never denies ("No permissions are required to perform this operation", the STS API reference).
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}


def decide(documents: Iterable[dict], action: str, resource: str, context: dict | None = None) -> tuple[bool, str]:
    """(allowed, why): why names the deciding statement (its Sid or its index) or says no statement allowed it."""
    context = context or {}
    if action in NEEDS_NO_PERMISSION:
        return True, "needs no permission"
    found = statements(documents)
    for index, statement in enumerate(found):
        if statement.get("Effect") == "Deny" and _statement_matches(statement, action, resource, context):
            return False, f"denied by {statement.get('Sid', index)}"
    for index, statement in enumerate(found):
        if statement.get("Effect") == "Allow" and _statement_matches(statement, action, resource, context):
            return True, f"allowed by {statement.get('Sid', index)}"
    return False, "no statement allows it (implicit deny)"


def granted_actions(documents: Iterable[dict]) -> set[tuple[str, str]]:
    """(Sid, action) of every action an Allow statement names (wildcards as written)."""
    return {
        (str(statement.get("Sid", index)), action)
        for index, statement in enumerate(statements(documents))
        if statement.get("Effect") == "Allow"
        for action in _list(statement.get("Action", []))
    }

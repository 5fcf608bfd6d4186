"""IAM proven by the calls: each call a task made, judged by its role's policies as IAM would.

The emulator records every signed call with its principal, action, resource and context
(``dagster_ecs_emulator.calls``; the local runtime gives each task its task role's credentials and
acts as the execution role for the agent's calls). This module reads those calls and the roles'
policies back from the emulator (``iam:GetRolePolicy``, attached policies' default versions) and
evaluates each call with ``dagster_ecs_emulator.policy``: what was denied, what was allowed by
which statement, and which granted actions no call used.
"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from dagster_ecs_emulator.calls import CALLS_PATH
from dagster_ecs_emulator.policy import decide, granted_actions

TEMPLATES = Path(__file__).resolve().parents[2] / "roles" / "iam" / "templates"
# Each task role's policy, by the role's name suffix: its template and the job it renders for.
ROLE_TEMPLATES = {
    "webserver-task": ("task-policy.json.j2", "webserver"),
    "daemon-task": ("task-policy.json.j2", "daemon"),
    "run-task": ("task-policy.json.j2", "run"),
    "task-execution": ("execution-policy.json.j2", "daemon"),
}

ACCOUNT, REGION = "123456789012", "ap-southeast-2"
# Example identifiers to render the templates with (the unit tests', and production's shape).
EXAMPLE_VALUES = {
    "dagster_ecs_project": "dagster-ecs",
    "dagster_ecs_aws_region": REGION,
    "preflight_account_id": ACCOUNT,
    "iam_partition": "aws",
    "iam_bucket_arn": "arn:aws:s3:::dagster-ecs-dags-123456789012-ap-southeast-2",
    "iam_efs_arn": f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0",
    "iam_access_point_arn": f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:access-point/fsap-0123456789abcdef0",
    "iam_cluster_name": "dagster-ecs",
    "iam_cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/dagster-ecs",
    "iam_execution_role_name": "dagster-ecs-execution",
    "iam_task_role_names": {job: f"dagster-ecs-{job}-task" for job in ("webserver", "daemon", "run")},
    "iam_repository_arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dagster-ecs",
    "iam_log_group_arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/dagster-ecs",
    "iam_secret_arns": [
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dagster-ecs/database-AbCdEf",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dagster-ecs/basic-auth-AbCdEf",
    ],
}


def render_template(name: str, **values) -> dict:
    """A policy template of the iam role rendered with ``values`` (as Ansible's template lookup would)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - JSON
    environment.filters["to_json"] = json.dumps  # as Ansible's filter
    return json.loads(environment.from_string((TEMPLATES / name).read_text()).render(**values))


def recorded_calls(endpoint: str) -> list[dict]:
    with urllib.request.urlopen(endpoint + CALLS_PATH, timeout=30) as answer:  # noqa: S310 - loopback emulator
        return json.loads(answer.read())["calls"]


def role_documents(iam, role_name: str) -> list[dict]:
    """The policy documents of a role: its inline policies, then its attached policies' default versions."""
    documents = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        documents.append(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        answer = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)
        documents.append(answer["PolicyVersion"]["Document"])
    return [json.loads(d) if isinstance(d, str) else d for d in documents]


@dataclass
class Proof:
    observed: set[tuple[str, str]] = field(default_factory=set)  # (role, action) of allowed calls
    denied: list[str] = field(default_factory=list)  # one line per denied or unjudgeable call
    used: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))  # role -> (sid, action)
    granted: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # role -> (sid, action)
    documents: dict[str, list[dict]] = field(default_factory=dict)

    def unused(self) -> set[tuple[str, str]]:
        """(role, action) granted by a statement that allowed none of the role's calls for that action."""
        return {
            (role, action)
            for role, grants in self.granted.items()
            for sid, action in grants
            if (sid, action) not in self.used[role]
        }


def prove(endpoint: str, iam, roles: set[str]) -> Proof:
    """Judge every successful call signed by one of ``roles`` (role names) against that role's policies."""
    proof = Proof()
    for role in sorted(roles):
        proof.documents[role] = role_documents(iam, role)
        proof.granted[role] = granted_actions(proof.documents[role])
    for call in recorded_calls(endpoint):
        role = call["principal"].rsplit("/", 1)[-1] if ":role/" in call["principal"] else None
        if role not in roles:
            continue
        line = f"{role}: {call['action']} on {call['resource']} {call['context']} ({call['count']}x, {call['outcome']})"
        if call["resource"] is None:
            proof.denied.append(f"{line}: the recorder names no resource for this action (calls.py)")
            continue
        allowed, why = decide(proof.documents[role], call["action"], call["resource"], call["context"])
        if not allowed:
            proof.denied.append(f"{line}: {why}")
            continue
        proof.observed.add((role, call["action"]))
        if why.startswith("allowed by "):
            proof.used[role].add((why.removeprefix("allowed by "), call["action"]))
    return proof


def deploy_actions(endpoint: str) -> set[str]:
    """The IAM actions the deploy itself called (the modules' calls, signed by any key that is not a role's)."""
    return {
        call["action"]
        for call in recorded_calls(endpoint)
        if call["client"] == "ansible" and ":role/" not in call["principal"] and call["outcome"] == "ok"
    }


def shape(documents: list[dict]) -> set[tuple]:
    """What a policy grants, without the account's identifiers: (Sid, actions, condition operators and keys)."""
    found = set()
    for document in documents:
        statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
        for s in statements:
            actions = tuple(sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
            conditions = tuple(sorted((op, key) for op, keys in (s.get("Condition") or {}).items() for key in keys))
            found.add((s.get("Sid"), s["Effect"], actions, conditions))
    return found

"""The IAM actions the iam stage grants, written once: what tests/unit/test_iam_policies.py expects of the rendered
policy templates and what tests/support/stage_checks.py (the iam stage's check) expects of a deployed stack.

No dependency beyond the standard library: stage_checks.py runs as a script in molecule's verify step.
"""

from __future__ import annotations

# The task roles, one per job (roles <project>-<job>-task).
JOBS = ("webserver", "daemon", "run")

# The task execution role (the ECS agent's): pull the image, write the logs, read the secrets into the environment.
EXECUTION = frozenset(
    {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    }
)

# A run's task: read the DAGs, use the file system; no ECS API (test_workload's IAM proof: no run task ever called one).
RUN = frozenset({"s3:ListBucket", "s3:GetObject", "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"})

# The webserver beyond a run's task: terminate a run from the UI; loading the instance's launcher reads the run task
# definition.
WEBSERVER_ONLY = frozenset({"ecs:DescribeTasks", "ecs:StopTask", "ecs:DescribeTaskDefinition"})

# The daemon beyond the webserver (with the ECS run launcher): start runs, pass them their roles, read their logs.
DAEMON_ONLY = frozenset({"ecs:RunTask", "ecs:TagResource", "logs:GetLogEvents", "iam:PassRole"})

# Actions AWS does not let a policy scope to a resource (the service authorization reference): only these may have
# Resource "*".
UNSCOPABLE = frozenset({"ecr:GetAuthorizationToken", "ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"})


def as_list(value) -> list:
    """A policy field that may be one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


def statements(document: dict) -> list[dict]:
    """The statements of a policy document (one statement may be written without a list)."""
    return as_list(document["Statement"])


def actions_of(document: dict) -> set[str]:
    """Every action a policy document names."""
    return {action for statement in statements(document) for action in as_list(statement["Action"])}

"""The Dagster container's runtime: one image, two roles (webserver, daemon) chosen by the command.

``dagster-ecs-entrypoint webserver|daemon`` runs the seed's start-up sequence (basic auth,
AWS credentials, bucket, initial DAG sync) and then supervisord with the role's programs.
The same entrypoint runs on Fargate and, from the project's venv, in the offline profile's
local ECS runtime.
"""

__version__ = "0.1.0"

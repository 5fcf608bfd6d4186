"""ECR (moto's ``ecr``)."""

from __future__ import annotations

from .base import Shim


class EcrRegistryV2(Shim):
    """ECR's registry endpoint (the Docker Registry HTTP API v2) is missing from moto.

    moto: has ECR's control plane only; nothing answers ``docker push``.
    AWS: ``docker push`` sends an image's blobs and manifest to the repository URI's host
    (``<account>.dkr.ecr.<region>.amazonaws.com``), logged in with ``ecr:GetAuthorizationToken``,
    and ``DescribeImages`` then lists the tag.
    Trips: the image stage (``community.docker.docker_login`` / ``docker_image_push``, then
    ``dagster_ecs.fargate.ecr_image_info``) had nowhere to push offline.
    moto issue: none found (the registry API is outside moto's scope).
    Not a rewrite and no patch: ``build_app`` mounts the registry (``dagster_ecs_emulator/registry.py``)
    under ``/v2/`` on the emulator's port in front of the layer; it streams blobs to disk and
    registers each pushed manifest in moto's ECR.
    """

    name = "ecr-registry-v2"
    summary = "ECR's registry (Docker Registry HTTP API v2) under /v2/ on the emulator's port (image stage's push)"

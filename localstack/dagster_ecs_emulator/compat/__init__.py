"""Compatibility layer: where moto answers differently from AWS, make it answer like AWS.

Every shim here exists because a stock amazon.aws / community.aws module (or one of ours, or
the local runtime) misbehaves against plain moto 5.2.5 in a way it does not against AWS. The
roles are written for AWS; the emulator is bent to match, never the other way round.

One module per AWS service, named as moto names it (``moto/<service>/``), holds that service's
shims; ``base.py`` holds what they are made of. Each shim:

* says in its docstring which moto behaviour it corrects, which AWS behaviour it restores, which
  module trips over the difference, and the moto issue where there is one;
* rewrites only the requests it matches, and only as little as needed (:class:`Rewrite`), or
  changes moto's model through ``patches.py`` (``Shim.patches``), reversibly;
* has a scenario in ``tests/emulator/scenarios/<name>.yml`` that fails when the shim is
  disabled (``python -m dagster_ecs_emulator serve --disable-shim NAME``).

``SHIMS`` is the registry, in the order the layer applies them. The table in
``localstack/README.md`` lists them for users.
"""

from __future__ import annotations

from .applicationautoscaling import AppAutoscalingPolicyNames, AppAutoscalingTags
from .base import CompatLayer, Exchange, Rewrite, Shim, XmlDocument
from .ec2 import Ec2RuleDescriptionsReturn
from .ecr import EcrRegistryV2
from .ecs import (
    EcsClusterCapacityProviders,
    EcsCreateServiceSettings,
    EcsEmptyTagLists,
    EcsRunTaskContainerMemory,
    EcsServiceTaskDefinitionArn,
    EcsTaskLifecycle,
)
from .efs import EfsLegacyTags
from .elbv2 import Elbv2AlbDefaultAttributes
from .rds import RdsGp3Baseline, RdsUniqueResourceId
from .s3 import S3PolicySecureTransport
from .servicediscovery import CloudMapListFilters, CloudMapPrivateZoneVpc

SHIMS: list[Shim] = [
    EfsLegacyTags(),
    EcsClusterCapacityProviders(),
    Ec2RuleDescriptionsReturn(),
    CloudMapListFilters(),
    Elbv2AlbDefaultAttributes(),
    EcsEmptyTagLists(),
    RdsGp3Baseline(),
    AppAutoscalingPolicyNames(),
    EcsCreateServiceSettings(),
    AppAutoscalingTags(),
    S3PolicySecureTransport(),
    CloudMapPrivateZoneVpc(),
    EcrRegistryV2(),
    RdsUniqueResourceId(),
    EcsServiceTaskDefinitionArn(),
    EcsRunTaskContainerMemory(),
    EcsTaskLifecycle(),
]

__all__ = [
    "SHIMS",
    "AppAutoscalingPolicyNames",
    "AppAutoscalingTags",
    "CloudMapListFilters",
    "CloudMapPrivateZoneVpc",
    "CompatLayer",
    "Ec2RuleDescriptionsReturn",
    "EcrRegistryV2",
    "EcsClusterCapacityProviders",
    "EcsCreateServiceSettings",
    "EcsEmptyTagLists",
    "EcsRunTaskContainerMemory",
    "EcsServiceTaskDefinitionArn",
    "EcsTaskLifecycle",
    "EfsLegacyTags",
    "Elbv2AlbDefaultAttributes",
    "Exchange",
    "RdsGp3Baseline",
    "RdsUniqueResourceId",
    "Rewrite",
    "S3PolicySecureTransport",
    "Shim",
    "XmlDocument",
]

"""Cloud Map (moto's ``servicediscovery``).

:func:`filtered` and :func:`associate_namespace_vpc` are the shims' logic on plain values; the
collection's unit-test harness (its ``tests/unit/plugins/harness.py``) applies the same functions to
the calls it intercepts.
"""

from __future__ import annotations

from collections.abc import Callable

from ..wsgi import moto_scope
from .base import Rewrite

PREFIX = "Route53AutoNaming_v20170314."


def _kept(value, condition: str, wanted: list) -> bool:
    if condition == "BEGINS_WITH":
        return any(str(value).startswith(w) for w in wanted)
    return value in wanted  # EQ and IN


def filtered(items: list, filters: list, fields: dict[str, Callable[[dict], object]]) -> list:
    """``items`` that pass every filter whose ``Name`` is in ``fields`` (name -> the item's value)."""
    for flt in filters or []:
        value_of = fields.get(flt.get("Name"))
        if value_of:
            condition = flt.get("Condition", "EQ")
            items = [item for item in items if _kept(value_of(item), condition, flt.get("Values", []))]
    return items


def associate_namespace_vpc(account: str, region: str, operation_id: str | None) -> None:
    """Associate the VPC of the private namespace CreatePrivateDnsNamespace's operation made with its zone."""
    from moto.route53.models import route53_backends
    from moto.servicediscovery.models import servicediscovery_backends
    from moto.utilities.utils import get_partition

    backend = servicediscovery_backends[account][region]
    operation = backend.operations.get(operation_id)
    namespace = backend.namespaces.get(operation.targets.get("NAMESPACE")) if operation else None
    zone_id = (namespace.dns_properties or {}).get("HostedZoneId") if namespace else None
    if not zone_id or not namespace.vpc:
        return
    zone = route53_backends[account][get_partition(region)].get_hosted_zone(zone_id)
    if not any(vpc.get("vpc_id") == namespace.vpc for vpc in zone.vpcs):
        zone.add_vpc(namespace.vpc, region)


class CloudMapListFilters(Rewrite):
    """Cloud Map ``ListServices`` / ``ListNamespaces`` ignore ``Filters`` in moto.

    moto: returns every service and every namespace, whatever the filters.
    AWS: returns only the services of the namespace named by a ``NAMESPACE_ID`` filter, and only
    the namespaces matching ``TYPE`` / ``NAME`` filters.
    Trips: ``dagster_ecs.fargate.cloudmap_service`` would find a same-named service of another
    namespace (and ``cloudmap_namespace`` another namespace).
    moto issue: none found.
    We apply the filters (conditions ``EQ``, ``IN``, ``BEGINS_WITH``) to moto's answer.
    """

    name = "cloudmap-list-filters"
    summary = "Cloud Map ListServices/ListNamespaces apply Filters (dagster_ecs.fargate.cloudmap_*)"
    _lists = {
        PREFIX + "ListServices": ("Services", {"NAMESPACE_ID": "NamespaceId"}),
        PREFIX + "ListNamespaces": ("Namespaces", {"TYPE": "Type", "NAME": "Name"}),
    }
    targets = tuple(_lists)

    def after(self, exchange):
        filters = exchange.request_json().get("Filters") or []
        if not filters:
            return
        key, keys = self._lists[exchange.target]
        payload = exchange.json()
        fields = {name: (lambda item, field=field: item.get(field)) for name, field in keys.items()}
        payload[key] = filtered(payload.get(key, []), filters, fields)
        exchange.set_json(payload)


class CloudMapPrivateZoneVpc(Rewrite):
    """A Cloud Map private DNS namespace's hosted zone is not associated with its VPC in moto.

    moto: ``CreatePrivateDnsNamespace`` creates the namespace's private hosted zone with no VPC.
    AWS: creates the zone associated with the namespace's VPC; ``GetHostedZone`` lists that VPC.
    Trips: ``dagster_ecs.fargate.cloudmap_namespace``, which tells same-named namespaces of
    different VPCs apart by their zone's VPCs: with another VPC's ``<project>.local`` present it
    found neither, and teardown left the project's own namespace behind.
    moto issue: none found (moto creates the zone since https://github.com/getmoto/moto/pull/8993;
    private zones' VPCs: https://github.com/getmoto/moto/issues/4785).
    We associate the namespace's VPC with its zone once moto has created both.
    """

    name = "cloudmap-private-zone-vpc"
    summary = "Cloud Map private DNS namespaces' hosted zones list their VPC (dagster_ecs.fargate.cloudmap_namespace)"

    targets = (PREFIX + "CreatePrivateDnsNamespace",)

    def after(self, exchange):
        associate_namespace_vpc(*moto_scope(exchange.environ), exchange.json().get("OperationId"))

"""RDS (moto's ``rds``)."""

from __future__ import annotations

import base64
import secrets

from ..wsgi import moto_scope, request_form
from .base import Rewrite


class RdsGp3Baseline(Rewrite):
    """RDS omits a gp3 instance's ``Iops`` and ``StorageThroughput``.

    moto: leaves both out of a gp3 instance created without them.
    AWS: reports the gp3 baseline for every gp3 instance (PostgreSQL below 400 GiB: 3000 IOPS and
    125 MiB/s; from 400 GiB: 12000 and 500).
    Trips: ``amazon.aws.rds_instance``, which reads ``instance["StorageThroughput"]`` when it
    converges an existing gp3 instance and fails with ``KeyError``.
    moto issue: none found.
    We add the baseline where moto left it out.
    """

    name = "rds-gp3-baseline"
    summary = "RDS gp3 instances report baseline Iops/StorageThroughput (amazon.aws.rds_instance re-run)"
    actions = ("DescribeDBInstances", "CreateDBInstance", "ModifyDBInstance")

    def after(self, exchange):
        document = exchange.xml()
        changed = False
        for instance in document.iter("DBInstance"):
            if not any(element.text == "gp3" for element in document.iter("StorageType", instance)):
                continue
            size = document.first("AllocatedStorage", instance)
            large = size is not None and (size.text or "").isdigit() and int(size.text) >= 400
            if document.first("Iops", instance) is None:
                document.add(instance, "Iops", "12000" if large else "3000")
                changed = True
            if document.first("StorageThroughput", instance) is None:
                document.add(instance, "StorageThroughput", "500" if large else "125")
                changed = True
        if changed:
            exchange.set_xml(document)


class RdsUniqueResourceId(Rewrite):
    """RDS gives every DB instance the same ``DbiResourceId``.

    moto 5.2.5: sets ``db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U`` on each instance.
    AWS: gives each new instance its own (an instance deleted and created again under the same
    identifier is another resource, with another id).
    Trips: the local runtime (``localdb.py``), which tells a new instance from the one its
    PostgreSQL holds the data of by this id (a new instance gets a new, empty database).
    moto issue: none found.
    We give each created instance a unique id, in moto's backend and in the CreateDBInstance answer.
    """

    name = "rds-unique-resource-id"
    summary = (
        "RDS CreateDBInstance gives each new instance its own DbiResourceId (local runtime: new instance, new database)"
    )
    _moto_id = "db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U"

    actions = ("CreateDBInstance",)

    def after(self, exchange):
        from moto.rds.models import rds_backends

        identifier = request_form(exchange.environ, "DBInstanceIdentifier")
        account, region = moto_scope(exchange.environ)
        database = rds_backends[account][region].databases.get(identifier)
        if database is None or database.dbi_resource_id != self._moto_id:
            return
        database.dbi_resource_id = "db-" + base64.b32encode(secrets.token_bytes(20)).decode()[:26]
        document = exchange.xml()
        for element in document.root.iter():
            if element.text == self._moto_id:
                element.text = database.dbi_resource_id
        exchange.set_xml(document)

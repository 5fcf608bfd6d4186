"""EC2 (moto's ``ec2``)."""

from __future__ import annotations

from .base import Rewrite


class Ec2RuleDescriptionsReturn(Rewrite):
    """EC2 ``UpdateSecurityGroupRuleDescriptions{Ingress,Egress}`` answer without ``<return>``.

    moto: answers an empty result.
    AWS: answers ``<return>true</return>``.
    Trips: ``amazon.aws.ec2_security_group``, which reads ``["Return"]`` when it only has to change a
    rule's description (e.g. describing the default egress rule) and fails with
    ``Module failed: 'Return'``.
    moto issue: none found.
    """

    name = "ec2-rule-descriptions-return"
    summary = "EC2 UpdateSecurityGroupRuleDescriptions* return <return>true</return> (ec2_security_group)"
    actions = ("UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress")

    def after(self, exchange):
        document = exchange.xml()
        if document.first("return") is None:
            document.add(document.root, "return", "true")
            exchange.set_xml(document)

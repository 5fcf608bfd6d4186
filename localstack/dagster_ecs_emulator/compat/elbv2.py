"""Elastic Load Balancing v2 (moto's ``elbv2``)."""

from __future__ import annotations

from ..wsgi import request_form
from .base import Rewrite


class Elbv2AlbDefaultAttributes(Rewrite):
    """ELBv2 ``DescribeLoadBalancerAttributes`` omits an ALB's default attributes.

    moto: lists five attributes of an application load balancer.
    AWS: lists every attribute of an application load balancer, with its default value.
    Trips: ``amazon.aws.elb_application_lb``, which reads e.g. ``idle_timeout_timeout_seconds`` and
    fails with ``KeyError`` when it converges the idle timeout, HTTP/2 or header settings.
    moto issue: none found.
    We add AWS's documented defaults for any attribute moto did not return (attributes set through
    ModifyLoadBalancerAttributes are returned by moto and left alone).
    """

    name = "elbv2-alb-default-attributes"
    summary = "ELBv2 DescribeLoadBalancerAttributes lists an ALB's defaults (amazon.aws.elb_application_lb)"
    ALB_DEFAULTS = {
        "access_logs.s3.enabled": "false",
        "client_keep_alive.seconds": "3600",
        "connection_logs.s3.enabled": "false",
        "idle_timeout.timeout_seconds": "60",
        "routing.http.desync_mitigation_mode": "defensive",
        "routing.http.drop_invalid_header_fields.enabled": "false",
        "routing.http.preserve_host_header.enabled": "false",
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
        "routing.http.xff_client_port.enabled": "false",
        "routing.http.xff_header_processing.mode": "append",
        "routing.http2.enabled": "true",
        "waf.fail_open.enabled": "false",
    }

    actions = ("DescribeLoadBalancerAttributes",)

    def matches(self, environ):
        return super().matches(environ) and ":loadbalancer/app/" in request_form(environ, "LoadBalancerArn")

    def after(self, exchange):
        document = exchange.xml()
        attributes = document.first("Attributes")
        if attributes is None:
            return
        present = {key.text for key in document.iter("Key")}
        for key, value in self.ALB_DEFAULTS.items():
            if key not in present:
                member = document.add(attributes, "member")
                document.add(member, "Key", key)
                document.add(member, "Value", value)
        exchange.set_xml(document)

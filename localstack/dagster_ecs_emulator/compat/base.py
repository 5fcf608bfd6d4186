"""What every shim is made of: the :class:`Shim` kinds, the buffered :class:`Exchange`, the
:class:`CompatLayer` middleware that applies request rewrites, and :class:`XmlDocument` for the
query-protocol (XML) answers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405 - parses moto's own answers, never a client's input
from dataclasses import dataclass, field

from ..patches import Patch
from ..wsgi import query_action, request_body, request_json


class XmlDocument:
    """A query-protocol (EC2, ELBv2, RDS) answer, parsed, to read and extend in its own namespace.

    moto answers ``<XResponse xmlns="...">``; elements added here take the root's namespace, and
    :meth:`to_bytes` writes the document back with that namespace as the default one (no prefixes).
    """

    def __init__(self, body: bytes):
        self.declared = body.lstrip().startswith(b"<?xml")
        self.root = ET.fromstring(body)  # noqa: S314 - moto's answer, produced in this process
        self.namespace = self.root.tag[1:].partition("}")[0] if self.root.tag.startswith("{") else ""

    def tag(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}" if self.namespace else name

    def iter(self, name: str, under: ET.Element | None = None):
        """Every element ``name`` under ``under`` (the document when None), in document order."""
        return (self.root if under is None else under).iter(self.tag(name))

    def first(self, name: str, under: ET.Element | None = None) -> ET.Element | None:
        return next(self.iter(name, under), None)

    def add(self, parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
        """Append an element ``name`` (with ``text``) as the last child of ``parent``."""
        child = ET.SubElement(parent, self.tag(name))
        child.text = text
        return child

    def to_bytes(self) -> bytes:
        return ET.tostring(
            self.root,
            encoding="utf-8",
            xml_declaration=self.declared,
            default_namespace=self.namespace or None,
        )


@dataclass
class Exchange:
    """One buffered request/response pair a shim may inspect and rewrite."""

    environ: dict
    status: str = ""
    headers: list = field(default_factory=list)
    body: bytes = b""

    @property
    def target(self) -> str:
        """The JSON-protocol operation (``X-Amz-Target``), e.g. ``...DescribeClusters``."""
        return self.environ.get("HTTP_X_AMZ_TARGET", "")

    def json(self):
        return json.loads(self.body or b"{}")

    def set_body(self, body: bytes) -> None:
        self.body = body
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        self.headers.append(("Content-Length", str(len(body))))

    def set_json(self, payload) -> None:
        self.set_body(json.dumps(payload).encode())

    def xml(self) -> XmlDocument:
        return XmlDocument(self.body)

    def set_xml(self, document: XmlDocument) -> None:
        self.set_body(document.to_bytes())

    def answer(self, status: str, payload) -> None:
        """Answer with a JSON document (AWS JSON protocol)."""
        self.status = status
        self.headers = [("Content-Type", "application/x-amz-json-1.1")]
        self.set_json(payload)

    def request_json(self):
        return request_json(self.environ)

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")


class Shim:
    """One place where moto answers differently from AWS, and what the emulator does about it.

    ``name`` is the shim's handle (``--disable-shim NAME``, the health endpoint, the table in
    ``localstack/README.md``, ``tests/emulator/scenarios/NAME.yml``); ``summary`` one line for users;
    the docstring says which moto behaviour it corrects, which AWS behaviour it restores, which
    module trips without it, and the moto issue where there is one. A shim acts in one (or both)
    of two ways: it rewrites requests (:class:`Rewrite`, applied by :class:`CompatLayer`), or it
    changes moto's model (:meth:`patches`, installed by ``build_app`` through ``patches.py``). The
    two whole applications moto lacks (the ECR registry, the ECS task control endpoint) are mounted
    by ``build_app`` itself, under their shim's name.
    """

    name = ""
    summary = ""

    def patches(self) -> list[Patch]:
        """The changes to moto's own code this shim needs (none for a request rewrite)."""
        return []


class Rewrite(Shim):
    """A shim that rewrites the requests it matches, and their answers, on their way through the layer.

    It matches the JSON-protocol operations in ``targets`` (``X-Amz-Target``) or the query-protocol
    ``actions`` (``Action=``); a shim that matches otherwise overrides :meth:`matches`.
    """

    targets: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def matches(self, environ: dict) -> bool:
        if self.targets:
            return environ.get("HTTP_X_AMZ_TARGET", "") in self.targets
        return bool(self.actions) and query_action(environ) in self.actions

    def respond(self, exchange: Exchange) -> bool:
        """Answer the request without moto (fill ``exchange``, return True); most shims return False."""
        return False

    def before(self, environ: dict) -> None:
        """Rewrite the request in place before moto sees it."""

    def after(self, exchange: Exchange) -> None:
        """Rewrite a successful (2xx) response in place before the client sees it (errors pass as moto gave them)."""


class CompatLayer:
    """WSGI middleware applying the rewrites whose ``matches`` accepts the request."""

    def __init__(self, app, shims):
        self.app = app
        self.shims = [shim for shim in shims if isinstance(shim, Rewrite)]

    def __call__(self, environ, start_response):
        active = [shim for shim in self.shims if shim.matches(environ)]
        if not active:
            return self.app(environ, start_response)
        request_body(environ)  # buffered before moto consumes it, so shims can read it afterwards
        exchange = Exchange(environ)
        if any(shim.respond(exchange) for shim in active):
            start_response(exchange.status, exchange.headers)
            return [exchange.body]
        for shim in active:
            shim.before(environ)

        def _capture(status, headers, exc_info=None):
            exchange.status, exchange.headers = status, list(headers)
            return lambda data: None

        chunks = self.app(environ, _capture)
        try:
            exchange.body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        if exchange.ok:
            for shim in active:
                shim.after(exchange)
        start_response(exchange.status, exchange.headers)
        return [exchange.body]

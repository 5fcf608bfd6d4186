"""The embedded AWS emulator: moto's server behind the compatibility layer.

moto's own ``ThreadedMotoServer`` binds the bare ``DomainDispatcherApplication``;
we bind the same application wrapped in :class:`~dagster_ecs_emulator.compat.CompatLayer`
(and moto's model patched where a shim needs it, ``patches.py``) so the stock amazon.aws /
community.aws modules see AWS's behaviour where moto diverges. The server binds to loopback only, and refuses
what a web page could send it (``browsers.py``): moto checks no signature.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterable

from werkzeug.serving import make_server

from . import __version__, patches
from .browsers import BrowserGuard
from .calls import CallRecorder
from .compat import SHIMS, CompatLayer, EcrRegistryV2, EcsTaskLifecycle, Shim
from .ecs_tasks import TaskControl
from .faults import FaultInjector
from .rds_data import RdsDataPlane
from .registry import Registry
from .wsgi import json_response, request_json

LOG = logging.getLogger("dagster_ecs_emulator")

HEALTH_PATH = "/_dagster_ecs_emulator/health"
SHIMS_PATH = "/_dagster_ecs_emulator/shims"


class HealthEndpoint:
    """Answers ``HEALTH_PATH`` so the profile can tell this emulator from a LocalStack."""

    def __init__(self, app, shims: Iterable[str]):
        self.app = app
        self.body = json.dumps({"emulator": "dagster-ecs-emulator", "version": __version__, "shims": sorted(shims)})

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == HEALTH_PATH:
            body = self.body.encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def active_shims(disabled_shims: Iterable[str] = ()) -> list[Shim]:
    """The registry's shims less the disabled ones; an unknown name is an error."""
    disabled = set(disabled_shims)
    unknown = disabled - {shim.name for shim in SHIMS}
    if unknown:
        raise ValueError(f"unknown shim(s): {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in SHIMS)}")
    return [shim for shim in SHIMS if shim.name not in disabled]


def build_app(disabled_shims: Iterable[str] = (), faults: Iterable[dict] = ()):
    """Return the WSGI application, outermost first: health, the call recorder (every signed call, attributed
    to its principal: calls.py), the RDS data plane, the ECS task control endpoint and the ECR registry (each
    unless its shim is disabled), fault injection, the compatibility layer's rewrites, moto.

    moto's own code is patched for exactly the active shims that need it (``patches.py``): what an
    earlier ``build_app`` of this process installed is put back first."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    shims = active_shims(disabled_shims)
    names = {shim.name for shim in shims}
    patches.uninstall()
    patches.install(patch for shim in shims for patch in shim.patches())
    app = FaultInjector(CompatLayer(DomainDispatcherApplication(create_backend_app), shims), faults)
    if EcrRegistryV2.name in names:  # the Docker Registry HTTP API v2 moto lacks (registry.py)
        app = Registry(app)
    if EcsTaskLifecycle.name in names:  # the local runtime reports its tasks' states here (ecs_tasks.py)
        app = TaskControl(app)
    return HealthEndpoint(CallRecorder(RdsDataPlane(app)), sorted(names))


class ShimSwitch:
    """The served application, rebuilt without other shims on request: the tests' way to prove a shim is
    needed on one running emulator instead of starting one per shim (``serve --disable-shim`` stays the way
    to start without one).

    ``GET SHIMS_PATH`` answers ``{"active": [...], "disabled": [...]}``; ``PUT SHIMS_PATH`` with
    ``{"disabled": [names]}`` builds the application again (``build_app``: moto's patches put back for
    exactly the active shims) and serves it from the next request on. moto's state is kept (reset it with
    ``POST /moto-api/reset``); the recorded calls and the fault rules start again from the ones given at
    start. Switch only while no request is in flight: the patches of moto's model are process-wide.
    An unknown shim name is refused (400) and changes nothing.
    """

    def __init__(self, disabled_shims: Iterable[str] = (), faults: Iterable[dict] = ()):
        self.faults = list(faults)
        self.lock = threading.Lock()
        self.disabled: list[str] = []
        self.app = None
        self.switch(disabled_shims)

    def switch(self, disabled_shims: Iterable[str]) -> None:
        disabled = sorted(set(disabled_shims))
        with self.lock:
            self.app = build_app(disabled, self.faults)
            self.disabled = disabled

    def state(self) -> dict:
        return {"active": sorted(s.name for s in active_shims(self.disabled)), "disabled": self.disabled}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != SHIMS_PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "PUT":
            try:
                body = request_json(environ)
                wanted = body.get("disabled") if isinstance(body, dict) else None
                if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
                    raise ValueError('the body is {"disabled": [shim names]}')
                active_shims(wanted)  # refuse an unknown name before anything is rebuilt
            except ValueError as error:
                return json_response(start_response, "400 Bad Request", {"error": str(error)})
            self.switch(wanted)
            LOG.info("shims disabled now: %s", ", ".join(self.disabled) or "none")
        elif method != "GET":
            return json_response(start_response, "405 Method Not Allowed", {"error": "GET or PUT"})
        return json_response(start_response, "200 OK", self.state())


def serve(host: str, port: int, disabled_shims: Iterable[str] = (), faults: Iterable[dict] = ()) -> None:
    """Serve until SIGTERM/SIGINT."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing to bind {host}: the emulator serves loopback only")
    app = BrowserGuard(ShimSwitch(disabled_shims, faults))  # no web page may call it (browsers.py)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

    def _stop(signum, _frame):
        LOG.info("signal %s: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    LOG.info("dagster-ecs-emulator %s serving on http://%s:%d", __version__, host, port)
    server.serve_forever()
    LOG.info("stopped")

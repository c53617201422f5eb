"""The sandbox's HTTP server: Shopify Admin GraphQL, Shopify's token endpoint and Loop's REST API on one port.

Routes::

    POST /admin/api/{version}/graphql.json   X-Shopify-Access-Token  -> shopify_graphql.ShopifyGraphQL
    POST /admin/oauth/access_token            form or JSON body        -> oauth.handle_access_token
    *    /api/v1/...                          X-Authorization          -> loop_api.LoopAPI
    GET  /_sandbox/state                      world.snapshot()
    GET  /_sandbox/faults                     injected-fault counters
    POST /_sandbox/preorder/release           {"variant_id": gid or number}: the pre-order ships
    POST /_sandbox/clock/advance              {"seconds": n}
    POST /_sandbox/orders                     an exchange, in the scenario format (scenarios.add_exchange)

Faults (``faults.FaultPlan``) are drawn per API request before routing and never touch ``/_sandbox``.
Responses always carry Content-Length and the server speaks HTTP/1.1 keep-alive, so a
``requests.Session`` reuses its connection as it would against the real services.

Python: ``with Sandbox() as sb: ...`` (``sb.url``, ``sb.credentials``, ``sb.world``, ``sb.faults``).
CLI: ``serve(...)`` backs ``loopsync sandbox serve``.
"""

from __future__ import annotations

import errno
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from loopsync.errors import ConfigError
from loopsync.sandbox.faults import Fault, FaultPlan, FaultSpecError, server_error_body, truncate
from loopsync.sandbox.loop_api import LoopAPI
from loopsync.sandbox.world import LogEntry, World, gid, iso

GRAPHQL_PATH = re.compile(r"^/admin/api/([^/]+)/graphql\.json$")
LATEST_VERSION = "2026-10"
OLDEST_VERSION = "2025-01"
JSON = "application/json; charset=utf-8"


def supported_version(version: str) -> bool:
    """Quarterly YYYY-MM versions from 2025-01 (holds with handles) up to the schema we serve, or unstable.

    GUESS: real Shopify falls forward to its oldest supported version for retired
    versions; the sandbox answers 404 for anything older than 2025-01 (which lacks
    multiple holds and hold handles) and for versions that do not exist, so a
    misconfigured client fails loudly here instead of silently in production.
    """
    if version == "unstable":
        return True
    match = re.fullmatch(r"(\d{4})-(01|04|07|10)", version)
    return bool(match) and OLDEST_VERSION <= version <= LATEST_VERSION


class Reply:
    """One HTTP answer, already encoded."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                 content_type: str = JSON) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": content_type, **(headers or {})}

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        if isinstance(payload, bytes):
            body = payload
        elif isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, headers)


DROP = object()  # close the connection without answering


class SandboxApp:
    """Routing, fault injection and the /_sandbox control routes; transport-free so tests can call it."""

    def __init__(self, world: World, faults: FaultPlan | None = None) -> None:
        self.world = world
        self.faults = faults
        self.loop = LoopAPI(world)
        self._graphql: Any = None
        self._graphql_lock = threading.Lock()

    # -- handlers from the other sandbox modules, imported when first needed --

    def graphql(self) -> Any:
        with self._graphql_lock:
            if self._graphql is None:
                from loopsync.sandbox.shopify_graphql import ShopifyGraphQL

                self._graphql = ShopifyGraphQL(self.world)
            return self._graphql

    # -- dispatch --

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes, base_url: str) -> Reply | object:
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)

        kind = self._api_kind(path)
        if kind is None:
            return Reply.json(404, {"errors": "Not Found"})
        fault = self.faults.draw() if self.faults is not None else None
        if fault is not None and fault.kind in ("drop", "5xx", "throttle"):
            return self._short_circuit(fault, kind, method, path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)

        fault_name = fault.kind if fault is not None else None
        log_mark = self._log_mark()
        if kind == "loop":
            status, out_headers, payload = self.loop.handle(
                method, path[len("/api/v1"):], query, headers, body, base_url=base_url, fault=fault_name
            )
            reply = Reply.json(status, payload, out_headers)
        elif kind == "shopify":
            reply = self._shopify(method, path, headers, body)
        else:
            reply = self._oauth(method, query, headers, body)
        if kind != "loop":
            self._log_handled(log_mark, kind, method, path, reply.status, fault_name)
        if fault is not None and fault.kind == "malformed":
            reply.body = truncate(reply.body)
        return reply

    @staticmethod
    def _api_kind(path: str) -> str | None:
        if GRAPHQL_PATH.match(path):
            return "shopify"
        if path == "/admin/oauth/access_token":
            return "oauth"
        if path == "/api/v1" or path.startswith("/api/v1/"):
            return "loop"
        return None

    def _short_circuit(self, fault: Fault, kind: str, method: str, path: str) -> Reply | object:
        """Faults that stop a request before it reaches the store: nothing in the world changes."""
        if fault.kind == "drop":
            self._record(kind, method, path, 0, "drop")
            return DROP
        if fault.kind == "5xx":
            content_type, body = server_error_body(fault)
            status = fault.status or 502
            self._record(kind, method, path, status, "5xx")
            return Reply(status, body, content_type=content_type)
        if kind == "shopify":
            with self.world.lock:
                bucket, rate = self.world.bucket_size, self.world.restore_rate
            # Shopify throttles GraphQL with HTTP 200 and a THROTTLED error, no data.
            payload = {
                "errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                # GUESS: the requested cost is unknown before parsing; an empty bucket tells the client to wait.
                "extensions": {"cost": {"requestedQueryCost": None, "actualQueryCost": None, "throttleStatus": {
                    "maximumAvailable": bucket, "currentlyAvailable": 0.0, "restoreRate": rate}}},
            }
            self._record(kind, method, path, 200, "throttle")
            return Reply.json(200, payload)
        # GUESS: Loop's 429 body and Retry-After; Shopify's token endpoint throttles the same way.
        self._record(kind, method, path, 429, "throttle")
        return Reply.json(429, {"message": "Too Many Attempts."}, {"Retry-After": "1"})

    # -- Shopify --

    def _shopify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        version = GRAPHQL_PATH.match(path).group(1)  # type: ignore[union-attr]
        if not supported_version(version):
            return Reply.json(404, {"errors": "Not Found"})
        if method != "POST":
            # GUESS: Shopify answers GET on graphql.json with an error; the sandbox only does POST.
            return Reply.json(405, {"errors": "Method Not Allowed"}, {"Allow": "POST"})
        token = headers.get("x-shopify-access-token")
        status, out_headers, payload = self.graphql().handle(token=token, body=body, path=path)
        return Reply.json(status, payload, {"X-Shopify-API-Version": version, **(out_headers or {})})

    def _oauth(self, method: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if method != "POST":
            return Reply.json(405, {"errors": "Method Not Allowed"}, {"Allow": "POST"})
        from loopsync.sandbox.oauth import handle_access_token

        form: dict[str, str] = dict(query)  # GUESS: Shopify also reads these parameters from the query string
        content_type = headers.get("content-type", "")
        if "json" in content_type:
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return Reply.json(400, {"error": "invalid_request", "error_description": "Body is not valid JSON."})
            if not isinstance(data, dict):
                return Reply.json(400, {"error": "invalid_request", "error_description": "Body is not an object."})
            form.update({str(k): str(v) for k, v in data.items()})
        else:
            form.update(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
        status, out_headers, payload = handle_access_token(self.world, form)
        return Reply.json(status, payload, out_headers)

    # -- logging --

    def _record(self, api: str, method: str, path: str, status: int, fault: str | None) -> None:
        self.world.record(LogEntry(at=self.world.now(), api=api, method=method, path=path, status=status,
                                   fault=fault))

    def _log_mark(self) -> int:
        with self.world.lock:
            return len(self.world.log)

    def _log_handled(self, mark: int, api: str, method: str, path: str, status: int, fault: str | None) -> None:
        """Make sure a handled Shopify/OAuth request is in the log once, with its fault.

        The GraphQL handler logs its own entries (it knows operation names and mutations);
        if it did, the fault is attached to that entry, otherwise one is added here.
        """
        with self.world.lock:
            for entry in reversed(self.world.log[mark:]):
                if entry.api == api and entry.path == path and entry.fault is None:
                    entry.fault = fault
                    return
            if api == "shopify" and any(e.api == "shopify" for e in self.world.log[mark:]):
                return
            self.world.log.append(LogEntry(at=self.world.now(), api=api, method=method, path=path,
                                           status=status, fault=fault))

    # -- /_sandbox --

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Reply]] = {
            ("GET", "/_sandbox/state"): lambda _: Reply.json(200, self.world.snapshot()),
            ("GET", "/_sandbox/faults"): lambda _: Reply.json(
                200, self.faults.summary() if self.faults is not None else {"requests": 0}),
            ("POST", "/_sandbox/preorder/release"): self._release_preorder,
            ("POST", "/_sandbox/clock/advance"): self._advance_clock,
            ("POST", "/_sandbox/orders"): self._add_order,
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(p == path for _, p in routes):
                return Reply.json(405, {"error": f"{method} is not allowed on {path}"})
            return Reply.json(404, {"error": f"no sandbox route {path}"})
        payload: dict[str, Any] = {}
        if method == "POST":
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = None  # type: ignore[assignment]
            if not isinstance(payload, dict):
                return self._control_logged(method, path, Reply.json(400, {"error": "body must be a JSON object"}))
        reply = handler(payload)
        return self._control_logged(method, path, reply) if method == "POST" else reply

    def _control_logged(self, method: str, path: str, reply: Reply) -> Reply:
        self._record("sandbox", method, path, reply.status, None)
        return reply

    def _release_preorder(self, payload: dict[str, Any]) -> Reply:
        raw = payload.get("variant_id")
        if raw is None or str(raw) == "":
            return Reply.json(400, {"error": "variant_id is required"})
        variant_id = gid("ProductVariant", int(raw)) if str(raw).isdigit() else str(raw)
        with self.world.lock:
            if variant_id not in self.world.variants:
                return Reply.json(404, {"error": f"unknown variant {raw}"})
            self.world.take_off_preorder(variant_id)
        return Reply.json(200, {"variant_id": variant_id, "preorder": False})

    def _advance_clock(self, payload: dict[str, Any]) -> Reply:
        seconds = payload.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return Reply.json(400, {"error": "seconds must be a non-negative number"})
        self.world.advance(timedelta(seconds=seconds))
        return Reply.json(200, {"now": iso(self.world.now())})

    def _add_order(self, payload: dict[str, Any]) -> Reply:
        from loopsync.sandbox.scenarios import ScenarioError, add_exchange

        try:
            created = add_exchange(self.world, payload)
        except ScenarioError as exc:
            return Reply.json(422, {"error": str(exc)})
        return Reply.json(201, created)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "loopsync-sandbox"
    sys_version = ""
    # Headers and body leave in one write with Nagle off; otherwise delayed ACKs add ~40 ms per request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this long, so a long-running serve() doesn't pile up threads.
    timeout = 300
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # requests are in world.log; stderr chatter would drown the CLI's output

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        base_url = f"http://{self.headers.get('Host')}" if self.headers.get("Host") else self.server.base_url
        try:
            reply = self.server.app.dispatch(self.command, self.path, headers, body, base_url)
        except Exception as exc:  # a sandbox bug must still answer, or the client hangs on keep-alive
            reply = Reply.json(500, {"errors": f"sandbox error: {type(exc).__name__}: {exc}"})
        if reply is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        assert isinstance(reply, Reply)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many clients at once in load tests; the default backlog of 5 refuses connections.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.connections_accepted = 0  # tests check that clients keep their connection alive
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._open_lock:
            self._open.add(conn)
            self.connections_accepted += 1
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is normal (timeouts, Ctrl-C, injected drops); anything else is a bug.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Kept-alive connections would otherwise hold their handler threads after stop()."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Sandbox:
    """A running sandbox on a free local port.

    ``world``: serve this World as-is (``scenario`` is then ignored). Otherwise a new
    World is made and ``scenario`` loaded into it: "demo" (built in), a path to a
    YAML/JSON scenario file, or None for an empty store. ``faults``: a FaultPlan or a
    spec string (see ``faults``); ``seed`` seeds faults without their own seed= and
    any generated orders in the scenario.
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        scenario: str | None = "demo",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: str | FaultPlan | None = None,
        seed: int = 0,
    ) -> None:
        if world is None:
            world = World()
            if scenario:
                from loopsync.sandbox.scenarios import load_scenario

                load_scenario(world, scenario, seed=seed)
        self.world = world
        self.faults = FaultPlan.coerce(faults, default_seed=seed)
        self.app = SandboxApp(world, self.faults)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._server = _Server(self._address, self.app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"loopsync-sandbox-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections_accepted(self) -> int:
        return self._server.connections_accepted if self._server is not None else 0

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- where and who --

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return self._server.base_url

    @property
    def shopify_url(self) -> str:
        """Stands in for https://{shop}.myshopify.com."""
        return self.url

    @property
    def loop_url(self) -> str:
        """Stands in for https://api.loopreturns.com/api/v1."""
        return f"{self.url}/api/v1"

    @property
    def credentials(self) -> dict[str, str | None]:
        return credentials(self.world)

    def env(self) -> dict[str, str]:
        """The environment variables that point loopsync at this sandbox."""
        creds = self.credentials
        values = {
            "LOOPSYNC_SHOPIFY_API_URL": self.shopify_url,
            # loopsync's clients add /admin/api/... and /api/v1 themselves.
            "LOOPSYNC_LOOP_API_URL": self.url,
            "LOOPSYNC_SHOP": creds["shop_domain"],
            "LOOPSYNC_SHOPIFY_TOKEN": creds["shopify_token"],
            "LOOPSYNC_LOOP_API_KEY": creds["loop_api_key"],
        }
        return {k: v for k, v in values.items() if v is not None}


def credentials(world: World) -> dict[str, str | None]:
    """The sandbox's own (fake) credentials: loopsync's app, else the first app with a token."""
    with world.lock:
        apps = list(world.apps.values())
        app = next((a for a in apps if a.title.lower() == "loopsync"), None) or next(
            (a for a in apps if a.static_tokens or a.client_id), None)
        loop_key = next((k for k, scopes in world.loop_api_keys.items() if "returns" in scopes), None)
        return {
            "shop_domain": world.shop_domain,
            "shopify_token": sorted(app.static_tokens)[0] if app and app.static_tokens else None,
            "client_id": app.client_id if app else None,
            "client_secret": app.client_secret if app else None,
            "loop_api_key": loop_key,
        }


class ServeError(ConfigError):
    """A ``sandbox serve`` argument that cannot be used: the person typed it, so it is theirs to fix (exit 2)."""


def _sandbox_for_serve(
    *, host: str, port: int, scenario: str | None, faults: str | FaultPlan | None, seed: int
) -> Sandbox:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"--port must be a number from 0 to 65535 (0 picks a free port), not {port}.")
    try:
        plan = FaultPlan.coerce(faults, default_seed=seed)
    except FaultSpecError as exc:
        raise ServeError(f"--faults {faults}: {str(exc).rstrip('.')}.") from None
    from loopsync.sandbox.scenarios import ScenarioError

    try:
        return Sandbox(scenario=scenario, host=host, port=port, faults=plan, seed=seed)
    except ScenarioError as exc:
        # Its text names the file, the section and what is wrong there.
        raise ServeError(f"Cannot load the scenario: {str(exc).rstrip('.')}.") from None


def _listen(sandbox: Sandbox, host: str, port: int) -> None:
    try:
        sandbox.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"Port {port} on {host} is already in use: pick another --port, or --port 0 for a free one."
            ) from None
        if isinstance(exc, socket.gaierror):
            raise ServeError(f"--host {host} is not an address this machine can listen on ({exc.strerror}).") from None
        raise ServeError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    scenario: str | None = "demo",
    faults: str | FaultPlan | None = None,
    seed: int = 0,
    *,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Run a sandbox in the foreground until Ctrl-C or SIGTERM (or ``stop_event``). Returns 0.

    Prints the base URL, the sandbox's fake credentials and the environment to use.
    """
    out = out or sys.stdout
    stop = stop_event or threading.Event()
    sandbox = _sandbox_for_serve(host=host, port=port, scenario=scenario, faults=faults, seed=seed)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        _listen(sandbox, host, port)
        creds = sandbox.credentials
        print(f"loopsync sandbox listening on {sandbox.url}", file=out)
        print(f"  Shopify Admin GraphQL: {sandbox.url}/admin/api/{LATEST_VERSION}/graphql.json", file=out)
        print(f"  Loop Returns API:      {sandbox.loop_url}/warehouse/return/list", file=out)
        print(f"  State:                 {sandbox.url}/_sandbox/state", file=out)
        if sandbox.faults is not None and sandbox.faults.active:
            print(f"  Faults:                {sandbox.faults.describe()}", file=out)
        print("Sandbox credentials (fake, for this sandbox only):", file=out)
        for name, value in creds.items():
            if value is not None:
                print(f"  {name}: {value}", file=out)
        print("Environment:", file=out)
        for name, value in sandbox.env().items():
            print(f"  export {name}={value}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("sandbox stopped", file=out, flush=True)
    return 0

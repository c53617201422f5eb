"""The sandbox's HTTP server: Shopify Admin GraphQL, Shopify's token endpoint and Loop's REST API on one port.

What each request gets is decided in ``routes`` (the route table is there); this module
puts it on the wire. Responses always carry Content-Length and the server speaks HTTP/1.1
keep-alive, so a ``requests.Session`` reuses its connection as it would against the real services.

Python: ``with Sandbox() as sb: ...`` (``sb.url``, ``sb.credentials``, ``sb.world``, ``sb.faults``).
CLI: ``serve(...)`` backs ``loopsync sandbox serve``.
"""

from __future__ import annotations

import errno
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from loopsync.errors import ConfigError
from loopsync.sandbox.faults import FaultPlan, FaultSpecError
from loopsync.sandbox.routes import DROP, LATEST_VERSION, Reply, SandboxApp
from loopsync.sandbox.world import World


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
        self.app.webhooks.start()
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
        self.app.webhooks.stop()
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
    def webhooks(self):
        """The delivery engine (``sandbox.webhooks.WebhookEngine``): switches, attempts, ``wait_idle``."""
        return self.app.webhooks

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
            # What `loopsync serve` checks deliveries with (the contract of issue 11).
            "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
            "LOOPSYNC_LOOP_WEBHOOK_SECRET": creds["loop_webhook_secret"],
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
            # What the sandbox signs this app's webhook deliveries with (its client secret, else its API secret).
            "webhook_secret": app.webhook_secret if app else None,
            "loop_api_key": loop_key,
            # What the sandbox signs Loop's webhook deliveries with (Loop's Developer Tools page shows it).
            "loop_webhook_secret": world.loop_webhook_secret,
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


def _subscribe_everything(sandbox: Sandbox, uri: str) -> list[str]:
    """loopsync's app (the one the credentials are for) subscribes every topic the sandbox delivers at ``uri``."""
    from loopsync.sandbox.shopify import rules, subscriptions
    from loopsync.sandbox.webhooks import TOPICS

    world = sandbox.world
    with world.lock:
        token = sandbox.credentials["shopify_token"]
        app = world.app_for_token(token) if token else None
        if app is None:
            raise ServeError("--webhooks-to needs an app with a token in the scenario (loopsync's, usually).")
        done = []
        for enum, topic in TOPICS.items():
            made = subscriptions.create(world, app, enum, uri, "JSON")
            if isinstance(made, rules.Refusal) and "already been taken" not in made.message:
                raise ServeError(f"--webhooks-to: the sandbox refused {topic.name}: {made.message}.")
            done.append(topic.name)
        return done


def _print_banner(sandbox: Sandbox, out: TextIO) -> None:
    """Where everything is, and the fake credentials and environment to point loopsync at it."""
    print(f"loopsync sandbox listening on {sandbox.url}", file=out)
    print(f"  Shopify Admin GraphQL: {sandbox.url}/admin/api/{LATEST_VERSION}/graphql.json", file=out)
    print(f"  Loop Returns API:      {sandbox.loop_url}/warehouse/return/list", file=out)
    print(f"  State:                 {sandbox.url}/_sandbox/state", file=out)
    if sandbox.faults is not None and sandbox.faults.active:
        print(f"  Faults:                {sandbox.faults.describe()}", file=out)
    print("Sandbox credentials (fake, for this sandbox only):", file=out)
    for name, value in sandbox.credentials.items():
        if value is not None:
            print(f"  {name}: {value}", file=out)
    print("Environment:", file=out)
    for name, value in sandbox.env().items():
        print(f"  export {name}={value}", file=out)


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    scenario: str | None = "demo",
    faults: str | FaultPlan | None = None,
    seed: int = 0,
    *,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
    webhooks_to: str | None = None,
) -> int:
    """Run a sandbox in the foreground until Ctrl-C or SIGTERM (or ``stop_event``). Returns 0.

    Prints the base URL, the sandbox's fake credentials and the environment to use,
    then one line per webhook delivery attempt as it goes out. ``webhooks_to``:
    subscribe loopsync's app to every topic the sandbox delivers, at that address.
    """
    out = out or sys.stdout
    stop = stop_event or threading.Event()
    if webhooks_to is not None:
        from loopsync.sandbox.webhooks import uri_refusal

        refusal = uri_refusal(webhooks_to)
        if refusal is not None:
            raise ServeError(
                f"--webhooks-to must be an https:// address, or http:// on 127.0.0.1 or localhost ({refusal.lower()})."
            )
    sandbox = _sandbox_for_serve(host=host, port=port, scenario=scenario, faults=faults, seed=seed)
    printing = threading.Lock()

    def show(attempt: Any) -> None:
        answer = str(attempt.status) if attempt.status is not None else f"no answer ({attempt.error})"
        with printing:
            print(f"webhook {attempt.topic} -> {attempt.uri}: {answer} (attempt {attempt.attempt}, "
                  f"{attempt.duration_ms:.0f} ms)", file=out, flush=True)

    sandbox.webhooks.on_attempt.append(show)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        _listen(sandbox, host, port)
        _print_banner(sandbox, out)
        if webhooks_to is not None:
            topics = _subscribe_everything(sandbox, webhooks_to)
            print(f"Webhooks:              {', '.join(topics)} -> {webhooks_to}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("sandbox stopped", file=out, flush=True)
    return 0

"""What the sandbox answers to each request, before any socket is involved.

Routes::

    POST /admin/api/{version}/graphql.json   X-Shopify-Access-Token  -> shopify.endpoint.ShopifyGraphQL
    POST /admin/oauth/access_token            form or JSON body        -> oauth.handle_access_token
    *    /api/v1/...                          X-Authorization          -> loop_api.LoopAPI
    GET  /_sandbox/state                      world.snapshot()
    GET  /_sandbox/faults                     injected-fault counters
    POST /_sandbox/preorder/release           {"variant_id": gid or number}: the pre-order ships
    POST /_sandbox/clock/advance              {"seconds": n}
    POST /_sandbox/orders                     an exchange, in the scenario format (scenarios.add_exchange)
    POST /_sandbox/activity                   what other actors do (activity.ACTIONS), e.g. create_exchange
    GET  /_sandbox/webhooks                   delivery switches, subscriptions, deliveries pending
    POST /_sandbox/webhooks                   change switches: {"duplicate": 0.3, "reorder": 5, "pause": true, ...}
    GET  /_sandbox/webhooks/deliveries        every delivery attempt (each ``webhooks.Attempt``, as JSON)
    GET  /_sandbox/loop/webhooks              Loop's Developer Tools page: its webhooks and their secret
    POST /_sandbox/loop/webhooks              {"trigger": "return.created", "url": ...}: a Loop webhook

Faults (``faults.FaultPlan``) are drawn per API request before routing and never touch ``/_sandbox``.
``SandboxApp.dispatch`` returns a ``Reply`` (or ``DROP``); ``server`` puts it on the wire.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopsync.sandbox.faults import Fault, FaultPlan, server_error_body, truncate
from loopsync.sandbox.loop_api import LoopAPI
from loopsync.sandbox.webhooks import WebhookEngine
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
        # Listens to the world while the server runs (Sandbox.start/stop).
        self.webhooks = WebhookEngine(world)
        self._graphql: Any = None
        self._graphql_lock = threading.Lock()

    # -- handlers from the other sandbox modules, imported when first needed --

    def graphql(self) -> Any:
        with self._graphql_lock:
            if self._graphql is None:
                from loopsync.sandbox.shopify.endpoint import ShopifyGraphQL

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
            ("POST", "/_sandbox/activity"): self._activity,
            ("GET", "/_sandbox/webhooks"): lambda _: Reply.json(200, self.webhooks.describe()),
            ("POST", "/_sandbox/webhooks"): self._webhook_switches,
            ("GET", "/_sandbox/webhooks/deliveries"): lambda _: Reply.json(
                200, {"deliveries": [asdict(a) for a in self.webhooks.attempts()],
                      "pending": self.webhooks.pending()}),
            ("GET", "/_sandbox/loop/webhooks"): lambda _: Reply.json(200, self._loop_webhooks()),
            ("POST", "/_sandbox/loop/webhooks"): self._add_loop_webhook,
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

    def _activity(self, payload: dict[str, Any]) -> Reply:
        """What other actors do to the store (Flow, staff, the warehouse): see sandbox/activity.py."""
        from loopsync.sandbox.activity import ActivityError, apply

        try:
            result = apply(self.world, payload)
        except ActivityError as exc:
            return Reply.json(422, {"error": str(exc)})
        # Activities that create something (create_exchange) say what, for benchmarks to time.
        created = result if isinstance(result, dict) else {}
        return Reply.json(200, {**created, "done": payload["do"], "now": iso(self.world.now())})

    def _webhook_switches(self, payload: dict[str, Any]) -> Reply:
        try:
            switches = self.webhooks.configure(payload)
        except ValueError as exc:
            return Reply.json(400, {"error": str(exc)})
        return Reply.json(200, {"switches": switches.as_dict()})

    def _loop_webhooks(self) -> dict[str, Any]:
        from loopsync.sandbox.webhooks import loop_webhook_json

        with self.world.lock:
            return {"webhooks": [loop_webhook_json(h) for h in self.world.loop_webhooks.values()],
                    "secret": self.world.loop_webhook_secret}

    def _add_loop_webhook(self, payload: dict[str, Any]) -> Reply:
        from loopsync.sandbox.webhooks import add_loop_webhook, loop_webhook_json

        try:
            hook = add_loop_webhook(self.world, payload)
        except ValueError as exc:
            return Reply.json(400, {"error": str(exc)})
        return Reply.json(201, {**loop_webhook_json(hook), "secret": self.world.loop_webhook_secret})

    def _add_order(self, payload: dict[str, Any]) -> Reply:
        from loopsync.sandbox.scenarios import ScenarioError, add_exchange

        try:
            created = add_exchange(self.world, payload)
        except ScenarioError as exc:
            return Reply.json(422, {"error": str(exc)})
        return Reply.json(201, created)

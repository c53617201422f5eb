"""The sandbox delivers webhooks: one signed POST per subscription for every change its topic reports.

The world calls ``WebhookEngine.on_change`` (``World.emit``) whenever an order is
created or updated, a hold is added or released, fulfillment orders are routed or
a selling plan group changes, whether loopsync's own mutation or another actor
(``activity``) made the change, as on Shopify. The engine builds the payload then,
queues one delivery per matching subscription, and worker threads POST them with
Shopify's headers and signature, retrying failures with back-off (scaled down to
``Switches.retry_delays``) and deleting a subscription whose deliveries keep failing.

Switches (scenario ``webhooks:`` block, or ``POST /_sandbox/webhooks``) make the
sandbox as unkind as Shopify is allowed to be: ``duplicate`` (probability that a
delivery is sent twice under one webhook id), ``reorder`` (hold back a window of
that many deliveries and send them shuffled), ``delay_ms``, ``pause``/``resume``,
``seed``. Every attempt is recorded (``attempts()``; ``GET /_sandbox/webhooks/deliveries``).

Loop's side: a Loop return made while a webhook on ``return.created`` is set up
(``POST /_sandbox/loop/webhooks``, standing for Loop's Developer Tools page) is delivered
the same way, signed with ``X-Loop-Signature``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from loopsync.sandbox.shopify.scopes import READ_FULFILLMENT_ORDERS, READ_ORDERS, READ_PRODUCTS
from loopsync.sandbox.world import App, LoopWebhook, World
from loopsync.subscriptions import loopback  # the rule Shopify applies to an address, as loopsync checks it

API_VERSION = "2026-10"


@dataclass(frozen=True)
class Topic:
    name: str  # the header form: orders/create
    scopes: tuple[str, ...]  # any one of them lets an app subscribe


#: The topics the sandbox delivers, by GraphQL enum value (the facts doc's table, with its scopes).
TOPICS: dict[str, Topic] = {
    "ORDERS_CREATE": Topic("orders/create", READ_ORDERS),
    "ORDERS_UPDATED": Topic("orders/updated", READ_ORDERS),
    "FULFILLMENT_HOLDS_ADDED": Topic("fulfillment_holds/added", READ_FULFILLMENT_ORDERS),
    "FULFILLMENT_HOLDS_RELEASED": Topic("fulfillment_holds/released", READ_FULFILLMENT_ORDERS),
    "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE": Topic("fulfillment_orders/order_routing_complete",
                                                       READ_FULFILLMENT_ORDERS),
    "SELLING_PLAN_GROUPS_UPDATE": Topic("selling_plan_groups/update", READ_PRODUCTS),
}
ENUM_OF: dict[str, str] = {t.name: enum for enum, t in TOPICS.items()}
#: ``World.emit`` topics for Loop's side: this prefix and a trigger (loop:return.created).
LOOP_TOPIC_PREFIX = "loop:"
#: The Loop webhook triggers the sandbox sends (those of its Return topic it has events for).
LOOP_TRIGGERS = ("return.created", "return.updated")


def topic_enum(text: str) -> str | None:
    """ORDERS_CREATE or orders/create -> ORDERS_CREATE; None for a topic the sandbox does not deliver."""
    if text in TOPICS:
        return text
    return ENUM_OF.get(text)


def uri_refusal(uri: str) -> str | None:
    """Why Shopify would refuse ``uri`` as an HTTP delivery address, or None.

    Shopify takes only https:// addresses (or Pub/Sub and EventBridge ones). The sandbox
    also takes plain http:// on 127.0.0.1, ::1 and localhost: its deliveries never leave
    the machine, and tests and `loopsync serve` listen there without TLS.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if not host or parts.scheme not in ("http", "https"):
        # GUESS: Shopify's wording for an address it cannot use.
        return "Address is invalid"
    if parts.scheme == "http" and not loopback(host):
        # GUESS: Shopify's wording; it refuses plain http, which is the documented rule.
        return "Address protocol http:// is not supported"
    return None




def signature(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Switches:
    """How the sandbox delivers; every field can be set by scenario or ``POST /_sandbox/webhooks``."""

    duplicate: float = 0.0  # probability that a delivery goes out twice, same webhook id
    reorder: int = 0  # hold back this many deliveries, then send them shuffled (0: in order)
    reorder_wait_ms: int = 300  # a window not yet full goes out after this long
    delay_ms: int = 0  # added before every first attempt
    paused: bool = False  # queue, send nothing (resume sends what queued up)
    seed: int = 0
    # Shopify retries 8 times over 4 hours; the sandbox keeps the count and shrinks the waits.
    # The last delay repeats when the list is shorter than max_attempts - 1.
    retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    max_attempts: int = 8
    # GUESS: Shopify deletes a subscription after 8 consecutive failed deliveries; the
    # sandbox counts failed attempts, so one delivery that never succeeds is enough.
    delete_after_failures: int = 8
    timeout: float = 5.0  # Shopify's (UNCONFIRMED) 5 s limit for an answer
    concurrency: int = 4  # deliveries in flight at once
    routing_delay_ms: int = 0  # create_exchange: fulfillment orders appear this long after the order

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], base: Switches | None = None) -> Switches:
        """``base`` with the keys of ``raw`` changed; ValueError names a bad key or value."""
        current = {f.name: getattr(base or cls(), f.name) for f in fields(cls)}
        known = set(current) | {"pause", "resume"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown webhook switch {unknown[0]!r}; known: {', '.join(sorted(known))}")
        for key, value in raw.items():
            if key in ("pause", "resume"):
                if value:
                    current["paused"] = key == "pause"
                continue
            current[key] = _checked(key, value)
        return cls(**current)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["retry_delays"] = list(self.retry_delays)
        return out


def _checked(key: str, value: Any) -> Any:
    def number(low: float, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low or (
                high is not None and value > high):
            limit = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"webhook switch {key!r} must be a number {limit}, not {value!r}")
        return value

    if key == "duplicate":
        return float(number(0, 1))
    if key in ("reorder", "reorder_wait_ms", "delay_ms", "seed", "routing_delay_ms"):
        return int(number(0))
    if key in ("max_attempts", "delete_after_failures", "concurrency"):
        return int(number(1))
    if key == "timeout":
        return float(number(0.01))
    if key == "paused":
        if not isinstance(value, bool):
            raise ValueError(f"webhook switch 'paused' must be true or false, not {value!r}")
        return value
    if key == "retry_delays":
        if not isinstance(value, list | tuple) or not value or any(
                isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in value):
            raise ValueError("webhook switch 'retry_delays' must be a list of seconds (non-negative numbers)")
        return tuple(float(v) for v in value)
    raise ValueError(f"unknown webhook switch {key!r}")


@dataclass
class Delivery:
    """One delivery to one subscription; retries and duplicates reuse its webhook id and body."""

    webhook_id: str
    event_id: str
    topic: str
    subscription_id: str
    uri: str
    body: bytes
    headers: dict[str, str]
    attempt: int = 0
    duplicate: bool = False


@dataclass
class Attempt:
    webhook_id: str
    event_id: str
    topic: str
    uri: str
    subscription_id: str
    attempt: int
    sent_at: str
    body_size: int
    status: int | None = None  # None: no answer (refused, timed out)
    error: str | None = None
    duration_ms: float = 0.0
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    delivery: Delivery = field(compare=False)


class WebhookEngine:
    """Queues deliveries as the world changes and sends them from worker threads while started."""

    def __init__(self, world: World, switches: Switches | None = None,
                 session_factory: Callable[[], Any] | None = None) -> None:
        self.world = world
        self.switches = switches or world.webhook_switches or Switches()
        self._rng = random.Random(self.switches.seed)
        self._cond = threading.Condition()
        self._queue: list[_Due] = []
        self._held: list[Delivery] = []  # the reorder window
        self._held_since: float | None = None
        self._in_flight = 0
        self._seq = itertools.count()
        self._attempts: list[Attempt] = []
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._session_factory = session_factory
        self.on_attempt: list[Callable[[Attempt], None]] = []

    # -- configuration --

    def configure(self, raw: Mapping[str, Any]) -> Switches:
        """Change switches (ValueError for a bad one); a new ``seed`` restarts the random draws."""
        with self._cond:
            self.switches = Switches.from_mapping(raw, self.switches)
            if "seed" in raw:
                self._rng = random.Random(self.switches.seed)
            self._cond.notify_all()
        with self.world.lock:
            self.world.webhook_switches = self.switches
        self._ensure_workers()
        return self.switches

    # -- the world changed --

    def on_change(self, topic: str, build: Callable[[App], dict[str, Any]]) -> None:
        """Queue one delivery per subscription to ``topic``; called under ``world.lock``."""
        if topic.startswith(LOOP_TOPIC_PREFIX):
            self._on_loop_change(topic.removeprefix(LOOP_TOPIC_PREFIX), build)
            return
        enum = ENUM_OF.get(topic)
        subs = [s for s in self.world.webhook_subscriptions.values() if s.topic == enum]
        if not subs:
            return
        event_id = str(uuid.uuid4())
        triggered_at = self.world.clock().astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        for sub in sorted(subs, key=lambda s: s.id):
            app = self.world.apps.get(sub.app_id)
            if app is None:
                continue
            body = json.dumps(build(app), separators=(",", ":")).encode()
            webhook_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Shopify-Captain-Hook",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature(app.webhook_secret, body),
                "X-Shopify-Shop-Domain": self.world.shop_domain,
                "X-Shopify-API-Version": API_VERSION,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": triggered_at,
            }
            self._enqueue(Delivery(webhook_id, event_id, topic, sub.id, sub.uri, body, headers))

    def _on_loop_change(self, trigger: str, build: Callable[[App], dict[str, Any]]) -> None:
        """Loop's deliveries: one per active webhook on ``trigger``, signed ``X-Loop-Signature``.

        Loop sends no delivery id, topic or shop header (the payload names its trigger), and
        is not retried here: Loop's docs disagree on whether it retries at all, so loopsync
        must not count on it (the facts doc). The duplicate, reorder and delay switches apply.
        """
        hooks = [h for h in self.world.loop_webhooks.values() if h.trigger == trigger and h.status == "active"]
        if not hooks:
            return
        body = json.dumps(build(None), separators=(",", ":")).encode()  # type: ignore[arg-type]
        event_id = str(uuid.uuid4())
        for hook in sorted(hooks, key=lambda h: h.id):
            headers = {
                "Content-Type": "application/json",
                # GUESS: Loop's user agent is not documented.
                "User-Agent": "Loop-Webhooks",
                "X-Loop-Signature": signature(self.world.loop_webhook_secret, body),
            }
            # The webhook id is the sandbox's own, for its attempt records; it is not sent.
            self._enqueue(Delivery(str(uuid.uuid4()), event_id, f"loop/{trigger}", f"loop:{hook.id}", hook.url,
                                   body, headers))

    def _enqueue(self, delivery: Delivery) -> None:
        with self._cond:
            copies = [delivery]
            if self.switches.duplicate and self._rng.random() < self.switches.duplicate:
                copies.append(Delivery(**{**delivery.__dict__, "headers": dict(delivery.headers), "duplicate": True}))
            if self.switches.reorder > 1:
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.extend(copies)
                if len(self._held) >= self.switches.reorder:
                    self._release_window()
            else:
                for copy in copies:
                    self._push(copy, self.switches.delay_ms / 1000)
            self._cond.notify_all()

    def _release_window(self) -> None:
        held, self._held, self._held_since = self._held, [], None
        self._rng.shuffle(held)
        for n, delivery in enumerate(held):
            # A microsecond apart keeps the shuffled order in the queue.
            self._push(delivery, self.switches.delay_ms / 1000 + n * 1e-6)

    def _push(self, delivery: Delivery, delay: float) -> None:
        heapq.heappush(self._queue, _Due(time.monotonic() + delay, next(self._seq), delivery))

    # -- sending --

    def start(self) -> None:
        """Listen to the world and send; what changed before this (a scenario being loaded) is not delivered."""
        with self.world.lock:
            if self.on_change not in self.world.listeners:
                self.world.listeners.append(self.on_change)
        with self._cond:
            self._stopping = False
        self._ensure_workers()

    def _ensure_workers(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._workers = [t for t in self._workers if t.is_alive()]
            while len(self._workers) < self.switches.concurrency:
                index = len(self._workers)
                worker = threading.Thread(target=self._work, args=(index,), name=f"sandbox-webhooks-{index}",
                                          daemon=True)
                self._workers.append(worker)
                worker.start()

    def stop(self) -> None:
        # A stopped sandbox's world may be served again by another Sandbox, with an engine of its own.
        with self.world.lock:
            if self.on_change in self.world.listeners:
                self.world.listeners.remove(self.on_change)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=self.switches.timeout + 1)
        self._workers = []

    def _next(self, index: int) -> Delivery | None:
        """The next delivery that is due, waiting for one; None when stopping or surplus."""
        with self._cond:
            while not self._stopping:
                if index >= self.switches.concurrency:
                    return None
                if self._held and self._held_since is not None and (
                        time.monotonic() - self._held_since >= self.switches.reorder_wait_ms / 1000):
                    self._release_window()
                wait = 0.5
                if self._queue and not self.switches.paused:
                    wait = self._queue[0].at - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._queue).delivery
                if self._held:
                    wait = min(wait, self.switches.reorder_wait_ms / 1000)
                self._cond.wait(max(wait, 0.001))
            return None

    def _work(self, index: int) -> None:
        session = self._session_factory() if self._session_factory else _session()
        while True:
            delivery = self._next(index)
            if delivery is None:
                return
            try:
                attempt = self._send(session, delivery)
                self._after(delivery, attempt)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _send(self, session: Any, delivery: Delivery) -> Attempt:
        delivery.attempt += 1
        sent = datetime.now(UTC)
        attempt = Attempt(
            webhook_id=delivery.webhook_id, event_id=delivery.event_id, topic=delivery.topic, uri=delivery.uri,
            subscription_id=delivery.subscription_id, attempt=delivery.attempt,
            sent_at=sent.isoformat(timespec="milliseconds").replace("+00:00", "Z"), body_size=len(delivery.body),
            duplicate=delivery.duplicate)
        start = time.monotonic()
        try:
            response = session.post(delivery.uri, data=delivery.body, headers=delivery.headers,
                                     timeout=(1.0, self.switches.timeout), allow_redirects=False)
            attempt.status = response.status_code
            response.close()
        except Exception as exc:  # any failure to get an answer is a failed attempt, as on Shopify
            attempt.error = type(exc).__name__
        attempt.duration_ms = round((time.monotonic() - start) * 1000, 2)
        return attempt

    def _after(self, delivery: Delivery, attempt: Attempt) -> None:
        with self.world.lock:
            sub = self.world.webhook_subscriptions.get(delivery.subscription_id)
            deleted = False
            if sub is not None:
                sub.consecutive_failures = 0 if attempt.ok else sub.consecutive_failures + 1
                if sub.consecutive_failures >= self.switches.delete_after_failures:
                    del self.world.webhook_subscriptions[sub.id]
                    deleted = True
        with self._cond:
            self._attempts.append(attempt)
            if deleted:
                # Nothing more goes to a deleted subscription, queued retries included.
                self._queue = [d for d in self._queue if d.delivery.subscription_id != delivery.subscription_id]
                heapq.heapify(self._queue)
            elif not attempt.ok and sub is not None and delivery.attempt < self.switches.max_attempts:
                delays = self.switches.retry_delays
                self._push(delivery, delays[min(delivery.attempt - 1, len(delays) - 1)])
            self._cond.notify_all()
        for callback in list(self.on_attempt):
            callback(attempt)

    # -- inspection --

    def attempts(self) -> list[Attempt]:
        with self._cond:
            return list(self._attempts)

    def pending(self) -> int:
        """Deliveries queued, held back or in flight."""
        with self._cond:
            return len(self._queue) + len(self._held) + self._in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight (paused deliveries never drain); True if it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._queue) + len(self._held) + self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def describe(self) -> dict[str, Any]:
        with self.world.lock:
            titles = {app.id: app.title for app in self.world.apps.values()}
            subs = [
                {"id": s.id, "app": titles.get(s.app_id), "topic": s.topic, "uri": s.uri,
                 "consecutive_failures": s.consecutive_failures}
                for s in self.world.webhook_subscriptions.values()
            ]
            loop_hooks = [loop_webhook_json(h) for h in self.world.loop_webhooks.values()]
        return {"switches": self.switches.as_dict(), "pending": self.pending(), "subscriptions": subs,
                "loop_webhooks": loop_hooks}


def loop_webhook_json(hook: LoopWebhook) -> dict[str, Any]:
    return {"id": hook.id, "topic": hook.topic, "trigger": hook.trigger, "url": hook.url, "status": hook.status}


def add_loop_webhook(world: World, raw: Mapping[str, Any]) -> LoopWebhook:
    """What a merchant does on Loop's Developer Tools page: a Return webhook on ``trigger`` to ``url``.

    ValueError says what is wrong. GUESS: Loop's rules for an address are not documented;
    the sandbox applies Shopify's (https, or plain http on this machine).
    """
    trigger, url = raw.get("trigger"), raw.get("url")
    if trigger not in LOOP_TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(LOOP_TRIGGERS)}")
    if not isinstance(url, str) or (refusal := uri_refusal(url)) is not None:
        raise ValueError(f"url: {refusal if isinstance(url, str) else 'is required'}")
    with world.lock:
        hook = LoopWebhook(id=max(world.loop_webhooks, default=0) + 1, trigger=trigger, url=url)
        world.loop_webhooks[hook.id] = hook
        return hook


def _session() -> Any:
    import requests

    session = requests.Session()
    # Deliveries go where the subscription says, never through a proxy from the environment.
    session.trust_env = False
    return session

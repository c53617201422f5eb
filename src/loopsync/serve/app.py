"""The HTTP side of `loopsync serve`: verify, write to the inbox, acknowledge. Nothing else.

Shopify waits about five seconds for an answer and retries (then gives up on the
subscription) when it gets none, so the request handler never calls an API: it checks
the signature, commits the delivery to the inbox and answers. The worker does the rest.

Answers, for an operator reading Shopify's delivery log (Loop's, at ``/webhooks/loop``, are
alike; there a 404 says no Loop webhook secret is stored, so nothing was verified or kept):

- 401: the signature is missing or wrong (nothing is stored);
- 403: signed, but for another shop than the state file's (nothing is stored);
- 400: no webhook id or topic header (nothing to de-duplicate on);
- 413: a body over 1 MiB (no Shopify delivery is that large);
- 503: the state file cannot be written just now (Shopify retries later);
- 200: stored, or already stored (a duplicate), or a topic loopsync does not act on
  (stored as ``ignored``: a 4xx would make Shopify retry it for hours and then delete
  the subscription, which someone made on purpose).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loopsync.errors import LoopsyncError
from loopsync.serve.metrics import Metrics
from loopsync.serve.supervisor import WorkerProcess
from loopsync.serve.verify import verified
from loopsync.serve.worker import LOOP_TOPICS, TOPICS
from loopsync.store import Store
from loopsync.store.inbox import NewDelivery
from loopsync.store.part import parse_iso
from loopsync.store.schema import InboxState

WEBHOOK_PATH = "/webhooks/shopify"
LOOP_WEBHOOK_PATH = "/webhooks/loop"
MAX_BODY = 1 << 20

log = logging.getLogger("loopsync.serve")


def _header_text(request: Request, name: str, limit: int = 200) -> str | None:
    """A header as stored and logged: stripped, printable, bounded (it comes from the network)."""
    value = request.headers.get(name)
    if value is None:
        return None
    value = "".join(ch for ch in value.strip() if ch.isprintable())[:limit]
    return value or None


def _loop_trigger(body: bytes) -> str | None:
    """The ``trigger`` a Loop payload names (return.created, …), as stored and logged; None if it names none."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    trigger = payload.get("trigger") if isinstance(payload, dict) else None
    if not isinstance(trigger, str):
        return None
    trigger = "".join(ch for ch in trigger.strip() if ch.isalnum() or ch in "._-")[:60]
    return trigger or None


def current_secrets(store: Store, now: datetime) -> list[str]:
    """The webhook secrets that verify now: the stored one, and during a rotation the one it replaced.

    Read from the state file for every delivery, so a `connect` that rotates the secret
    takes effect without restarting serve.
    """
    conn = store.config.connection()
    if conn is None or not conn.webhook_secret:
        return []
    secrets = [conn.webhook_secret]
    if conn.previous_webhook_secret and conn.previous_webhook_secret_until:
        if parse_iso(conn.previous_webhook_secret_until) > now:
            secrets.append(conn.previous_webhook_secret)
    return secrets


class InboxWriter:
    """Commits deliveries to the inbox for the event loop, from a thread with its own connection.

    While one commit waits for the write lock (the worker process writes too), the event
    loop goes on reading requests, and everything that arrived meanwhile is committed in
    the next transaction: one lock wait and one fsync for the lot, each delivery still
    committed before its answer.
    """

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._open_store = open_store
        self._thread = threading.Thread(target=self._run, name="loopsync-inbox-writer", daemon=True)
        self._thread.start()

    async def add(self, delivery: NewDelivery) -> bool:
        """True once committed; False for a webhook id already there; LoopsyncError when it cannot be written."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((delivery, done, loop))
        return await done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        store: Store | None = None
        try:
            while (first := self._queue.get()) is not None:
                batch = [first]
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)  # close() after this batch
                        break
                    batch.append(item)
                try:
                    if store is None:
                        store = self._open_store()
                    outcome: list[bool] | LoopsyncError = store.inbox.add_many([d for d, _f, _l in batch])
                except LoopsyncError as exc:
                    outcome = exc
                for i, (_d, done, loop) in enumerate(batch):
                    loop.call_soon_threadsafe(_settle, done, outcome if isinstance(outcome, LoopsyncError)
                                              else outcome[i])
        finally:
            if store is not None:
                store.close()


def _settle(done: asyncio.Future, outcome: bool | LoopsyncError) -> None:
    if done.cancelled():  # the client went away; the row is committed all the same
        return
    if isinstance(outcome, LoopsyncError):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


class _Receiver:
    """The routes' handlers. ``store`` is used from the event loop's thread only (SQLite
    connections are per thread), for reads; deliveries are written by ``writer``, and
    ``worker.wake()`` tells the worker process one is waiting."""

    def __init__(self, store: Store, shop: str, metrics: Metrics, writer: InboxWriter, worker: WorkerProcess) -> None:
        self.store, self.shop, self.metrics, self.writer, self.worker = store, shop, metrics, writer, worker

    def reject(self, reason: str, status: int, webhook_id: str | None, topic: str | None) -> Response:
        self.metrics.rejected.labels(reason=reason).inc()
        log.info("delivery %s %s: rejected (%s, %d)", webhook_id or "-", topic or "-", reason, status)
        return JSONResponse({"error": reason}, status_code=status)

    async def _body(self, request: Request, webhook_id: str | None, topic: str | None) -> bytes | Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return self.reject("too_large", 413, webhook_id, topic)
        body = await request.body()
        if len(body) > MAX_BODY:
            return self.reject("too_large", 413, webhook_id, topic)
        return body

    async def shopify_webhook(self, request: Request) -> Response:
        webhook_id = _header_text(request, "x-shopify-webhook-id")
        topic = _header_text(request, "x-shopify-topic", 100)
        body = await self._body(request, webhook_id, topic)
        if isinstance(body, Response):
            return body
        try:
            secrets = current_secrets(self.store, datetime.now(UTC))
        except LoopsyncError:
            return self.reject("state_file", 503, webhook_id, topic)
        if not verified(body, request.headers.get("x-shopify-hmac-sha256"), secrets):
            return self.reject("signature", 401, webhook_id, topic)
        domain = (_header_text(request, "x-shopify-shop-domain") or "").lower()
        if domain != self.shop:
            return self.reject("other_shop", 403, webhook_id, topic)
        if not webhook_id or not topic:
            return self.reject("headers", 400, webhook_id, topic)
        return await self._accept(NewDelivery(
            webhook_id=webhook_id,
            topic=topic,
            shop=domain,
            body=body.decode("utf-8", "replace"),
            triggered_at=_header_text(request, "x-shopify-triggered-at", 64),
            event_id=_header_text(request, "x-shopify-event-id"),
            state=InboxState.PENDING if topic in TOPICS else InboxState.IGNORED,
        ))

    async def loop_webhook(self, request: Request) -> Response:
        """Loop's return deliveries. Loop sends no delivery id, so the body's hash stands in for
        one: a retry (Loop's docs disagree on whether it retries) repeats the body exactly."""
        body = await self._body(request, None, "loop")
        if isinstance(body, Response):
            return body
        try:
            conn = self.store.config.connection()
        except LoopsyncError:
            return self.reject("state_file", 503, None, "loop")
        secret = conn.loop_webhook_secret if conn is not None and conn.loop_connected else None
        if not secret:
            return self.reject("loop_not_set_up", 404, None, "loop")
        # GUESS: Loop signs the bytes it sends (its docs' sample hashes the raw request body).
        if not verified(body, request.headers.get("x-loop-signature"), [secret]):
            return self.reject("signature", 401, None, "loop")
        topic = f"loop/{_loop_trigger(body) or 'unknown'}"
        return await self._accept(NewDelivery(
            webhook_id="loop-" + hashlib.sha256(body).hexdigest()[:40],
            topic=topic,
            shop=self.shop,
            body=body.decode("utf-8", "replace"),
            triggered_at=None,
            event_id=None,
            state=InboxState.PENDING if topic in LOOP_TOPICS else InboxState.IGNORED,
        ))

    async def _accept(self, delivery: NewDelivery) -> Response:
        """Commit a verified delivery, then answer; a topic not acted on is kept as ``ignored``."""
        webhook_id, topic = delivery.webhook_id, delivery.topic
        try:
            added = await self.writer.add(delivery)
        except LoopsyncError:
            # Not acknowledged, so the sender delivers it again: nothing is lost.
            return self.reject("state_file", 503, webhook_id, topic)
        if not added:
            self.metrics.duplicate.inc()
            log.info("delivery %s %s: duplicate, already in the inbox", webhook_id, topic)
            return JSONResponse({"duplicate": True})
        self.metrics.accepted.labels(topic=topic).inc()
        if delivery.state == InboxState.IGNORED:
            log.info("delivery %s %s: ignored (loopsync does not act on this topic)", webhook_id, topic)
            return JSONResponse({"ignored": "loopsync does not act on this topic"})
        log.info("delivery %s %s: accepted", webhook_id, topic)
        self.worker.wake()
        return JSONResponse({"accepted": True})

    async def healthz(self, _request: Request) -> Response:
        try:
            conn = self.store.config.connection()
        except LoopsyncError as exc:
            return JSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503)
        if conn is None:
            return JSONResponse(
                {"status": "unavailable", "reason": "the state file holds no connection"}, status_code=503
            )
        if not conn.webhook_secret:
            return JSONResponse({"status": "unavailable", "reason": "no webhook secret is stored"}, status_code=503)
        if not self.worker.alive:
            # Deliveries are still taken (the inbox keeps them); serve is starting another worker.
            return JSONResponse(
                {"status": "unavailable", "reason": "the worker process is not running; serve is restarting it"},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "shop": conn.shop, "loop_connected": conn.loop_connected})

    async def prometheus(self, _request: Request) -> Response:
        text, content_type = self.metrics.render()
        return Response(text, media_type=content_type)


def build_app(store: Store, shop: str, metrics: Metrics, writer: InboxWriter, worker: WorkerProcess) -> Starlette:
    """The ASGI app: the webhook route, /healthz and /metrics."""
    r = _Receiver(store, shop, metrics, writer, worker)
    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, r.shopify_webhook, methods=["POST"]),
            Route(LOOP_WEBHOOK_PATH, r.loop_webhook, methods=["POST"]),
            Route("/healthz", r.healthz, methods=["GET"]),
            Route("/metrics", r.prometheus, methods=["GET"]),
        ]
    )

"""Loop Returns REST API (``/api/v1``), served from the ``World`` as the real API behaves.

Endpoints: ``GET /warehouse/return/list``, ``GET /warehouse/return/details``,
``POST /warehouse/return/{id}/note``, ``GET /warehouse/return/{id}/notes``.
Auth is the ``X-Authorization`` header; keys and their scopes live in
``world.loop_api_keys``. Every request is logged in ``world.log`` with api="loop".

Facts behind each behaviour: /work/shared/reference/api-facts/loop-returns-api.md.
``handle`` returns ``(status, headers, body)`` where body is a JSON-ready object
(``True``/``False`` are served as the JSON literals Loop sends).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from loopsync.sandbox.world import LogEntry, LoopExchange, LoopNote, LoopReturn, World, iso

UNAUTHORIZED = {"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}}
NOTE_INVALID = {"errors": {"message": "Content is required and must be less than 255 characters."}}
NOT_FOUND = {"error": {"message": "No return found with this ID."}}
STATES = ("open", "closed", "cancelled", "expired", "review")
DEFAULT_STATES = ("open", "closed", "expired")
MAX_RANGE = timedelta(days=120)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 750
NOTE_MAX = 255
WINDOW_SECONDS = 60.0

Response = tuple[int, dict[str, str], Any]


class RateLimiter:
    """Loop's 300 requests/minute per key, as a sliding 60-second window.

    ``clock`` is in seconds; the sandbox passes monotonic time plus the world clock's
    offset, so advancing the world clock also empties the window.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int) -> tuple[bool, int, int]:
        """Count one request. Returns (allowed, remaining, retry_after_seconds)."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= limit:
                retry = max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
                return False, 0, retry
            hits.append(now)
            return True, limit - len(hits), 0


def _parse_time(raw: str) -> datetime:
    """Loop's examples use ``2022-01-01T00:00:00.000Z`` and ``yyyy-mm-dd hh:mm:ss``; a bare date works too."""
    text = raw.strip().replace("Z", "+00:00")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _validation(field: str, message: str) -> Response:
    # GUESS: Loop is a Laravel app; its validation failures look like Laravel's 422 body.
    return 422, {}, {"message": message, "errors": {field: [message]}}


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> dict[str, Any]:
    padded = raw + "=" * (-len(raw) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(data, dict) or not isinstance(data.get("id"), int) or data.get("dir") not in ("next", "prev"):
        raise ValueError("bad cursor")
    return data


def _order_number(name: str) -> str:
    return name.lstrip("#")


def _exchange_json(ex: LoopExchange) -> dict[str, Any]:
    return {
        "exchange_id": ex.exchange_id,
        "exchange_order_id": ex.exchange_order_id,
        "exchange_order_name": ex.exchange_order_name,
        "product_id": ex.product_id,
        "variant_id": ex.variant_id,
        "sku": ex.sku,
        "type": "exchange",
        "title": ex.title,
        "price": ex.price,
        "discount": "0.00",
        "tax": "0.00",
        "total": ex.price,
        "out_of_stock": ex.out_of_stock,
        "out_of_stock_resolution": None,
    }


def return_json(ret: LoopReturn) -> dict[str, Any]:
    """A return as Loop's details and list endpoints show it (the fields loopsync and its peers read)."""
    exchanges = [_exchange_json(ex) for ex in ret.exchanges]
    first = ret.exchanges[0] if ret.exchanges else None
    total = f"{sum(float(ex.price) for ex in ret.exchanges):.2f}"
    return {
        "id": ret.id,
        "state": ret.state,
        # GUESS: ISO 8601 with a Z, like the return webhook; the notes list in the field used "Y-m-d H:i:s".
        "created_at": iso(ret.created_at),
        "updated_at": iso(ret.updated_at),
        "edited_at": None,
        "outcome": ret.outcome,
        "order_id": ret.order_id,
        "order_name": ret.order_name,
        "order_number": _order_number(ret.order_name),
        "provider_order_id": ret.provider_order_id,
        # GUESS: the original order's number without '#', as order_number.
        "provider_order_number": _order_number(ret.order_name),
        "customer": ret.customer,
        "currency": "USD",
        # GUESS: the details example has a top-level "exchange"; its shape is not documented in our facts,
        # so it summarises the exchange total. Clients should read exchanges[] instead.
        "exchange": {"total": total} if ret.exchanges else None,
        # The details example's top-level link to the (first) exchange order.
        "exchange_order_name": first.exchange_order_name if first else None,
        "exchange_order_id": first.exchange_order_id if first else None,
        "gift_card_order_name": None,
        "gift_card_order_id": None,
        "refunds": [],
        "line_items": [
            {
                "line_item_id": f"{ret.id}{i}",
                "outcome": "exchange",
                "exchange_variant": ex.variant_id,
                "title": ex.title,
                "sku": ex.sku,
                "price": ex.price,
            }
            for i, ex in enumerate(ret.exchanges, start=1)
        ],
        "exchanges": exchanges,
    }


class LoopAPI:
    """The Loop REST handlers over one ``World``."""

    def __init__(self, world: World, *, clock: Callable[[], float] | None = None) -> None:
        self.world = world
        self.limiter = RateLimiter(clock or self._default_clock)

    def _default_clock(self) -> float:
        return time.monotonic() + self.world.offset.total_seconds()

    # -- entry point --

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        *,
        base_url: str,
        fault: str | None = None,
    ) -> Response:
        """``path`` is below ``/api/v1``; ``query`` holds the last value of each parameter.

        ``headers`` keys are lower-case. ``base_url`` is the sandbox's own ``http://host:port``,
        used for absolute ``nextPageUrl`` links.
        """
        status, out_headers, out = self._dispatch(method, path, query, headers, body, base_url)
        self.world.record(
            LogEntry(at=self.world.now(), api="loop", method=method, path="/api/v1" + path, status=status,
                     operation=self._operation(method, path), fault=fault)
        )
        return status, out_headers, out

    @staticmethod
    def _operation(method: str, path: str) -> str | None:
        if path == "/warehouse/return/list":
            return "return.list"
        if path == "/warehouse/return/details":
            return "return.details"
        if path.endswith("/note"):
            return "return.note.create"
        if path.endswith("/notes"):
            return "return.notes.list"
        return None

    def _dispatch(self, method, path, query, headers, body, base_url) -> Response:
        key = headers.get("x-authorization", "").strip()
        with self.world.lock:
            scopes = self.world.loop_api_keys.get(key) if key else None
            limit = self.world.loop_rate_per_minute
        if scopes is None:
            return 401, {}, UNAUTHORIZED
        # GUESS: only requests with a known key count against its limit; unknown keys get 401 first.
        allowed, remaining, retry_after = self.limiter.hit(key, limit)
        rate_headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining)}
        if not allowed:
            # GUESS: Loop's docs only say "pause briefly"; the sandbox says how long, in seconds.
            return 429, {**rate_headers, "Retry-After": str(retry_after)}, {"message": "Too Many Attempts."}
        if "returns" not in scopes:
            # Loop's FAQ: a valid key without the needed scope is a 401 too.
            return 401, rate_headers, UNAUTHORIZED

        status, out_headers, out = self._route(method, path, query, body, base_url)
        return status, {**rate_headers, **out_headers}, out

    def _route(self, method, path, query, body, base_url) -> Response:
        note = re.fullmatch(r"/warehouse/return/([^/]+)/(note|notes)", path)
        routes: dict[str, tuple[str, Callable[[], Response]]] = {
            "/warehouse/return/list": ("GET", lambda: self.list_returns(query, base_url)),
            "/warehouse/return/details": ("GET", lambda: self.details(query)),
        }
        if note and note.group(2) == "note":
            routes[path] = ("POST", lambda: self.create_note(note.group(1), body))
        elif note:
            routes[path] = ("GET", lambda: self.list_notes(note.group(1)))
        if path not in routes:
            # GUESS: Laravel's default JSON 404.
            return 404, {}, {"message": "Not Found"}
        wanted, handler = routes[path]
        if method != wanted:
            return 405, {"Allow": wanted}, {"message": f"The {method} method is not supported for this route."}
        return handler()

    # -- GET /warehouse/return/list --

    def list_returns(self, query: dict[str, str], base_url: str) -> Response:
        now = self.world.now()
        try:
            start = _parse_time(query["from"]) if query.get("from") else None
        except ValueError:
            return _validation("from", "The from is not a valid date.")
        try:
            end = _parse_time(query["to"]) if query.get("to") else None
        except ValueError:
            return _validation("to", "The to is not a valid date.")
        if start is None and end is None:
            start, end = now - timedelta(hours=24), now
        elif end is None:
            end = now  # GUESS: an open-ended range runs to now
        elif start is None:
            start = end - timedelta(hours=24)  # GUESS: a lone "to" looks back 24 h
        assert start is not None and end is not None
        if end < start:
            return _validation("to", "The to must be a date after or equal to from.")  # GUESS
        if end - start > MAX_RANGE:
            return _validation("to", "The date range may not be greater than 120 days.")

        field = query.get("filter") or "created_at"
        if field not in ("created_at", "updated_at"):
            return _validation("filter", "The selected filter is invalid.")
        state = query.get("state")
        if state is not None and state not in STATES:
            return _validation("state", "The selected state is invalid.")
        states = (state,) if state else DEFAULT_STATES

        with self.world.lock:
            matches = sorted(
                (
                    r for r in self.world.loop_returns.values()
                    if r.state in states and start <= getattr(r, field) <= end
                ),
                key=lambda r: r.id,  # GUESS: Loop's order is undocumented; ascending id keeps cursors stable
            )
            if query.get("paginate", "").lower() not in ("true", "1"):
                return 200, {}, [return_json(r) for r in matches]
            return self._page(matches, query, base_url)

    def _page(self, matches: list[LoopReturn], query: dict[str, str], base_url: str) -> Response:
        raw_size = query.get("pageSize") or str(DEFAULT_PAGE_SIZE)
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            return _validation("pageSize", f"The page size must be between 1 and {MAX_PAGE_SIZE}.")  # GUESS
        size = int(raw_size)
        if query.get("cursor"):
            try:
                cursor = _decode_cursor(query["cursor"])
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return _validation("cursor", "The cursor is invalid.")  # GUESS
            if cursor["dir"] == "next":
                rest = [r for r in matches if r.id > cursor["id"]]
                page = rest[:size]
            else:
                before = [r for r in matches if r.id < cursor["id"]]
                page = before[-size:]
        else:
            page = matches[:size]
        has_next = bool(page) and any(r.id > page[-1].id for r in matches)
        has_prev = bool(page) and any(r.id < page[0].id for r in matches)

        def link(direction: str, anchor: int) -> str:
            params = {k: v for k, v in query.items() if k != "cursor"}
            params["cursor"] = _encode_cursor({"dir": direction, "id": anchor})
            return f"{base_url}/api/v1/warehouse/return/list?{urlencode(params)}"

        return 200, {}, {
            "returns": [return_json(r) for r in page],
            "nextPageUrl": link("next", page[-1].id) if has_next else None,
            "previousPageUrl": link("prev", page[0].id) if has_prev else None,
        }

    # -- GET /warehouse/return/details --

    def details(self, query: dict[str, str]) -> Response:
        given = [k for k in ("return_id", "order_id", "order_name") if query.get(k)]
        if len(given) != 1:
            # GUESS: the docs say "send exactly one identifier" without the error; a validation error.
            return 422, {}, {"errors": {"message": "Exactly one of return_id, order_id or order_name is required."}}
        which = given[0]
        value = query[which].strip()
        with self.world.lock:
            returns = list(self.world.loop_returns.values())
            if which == "return_id":
                found = [r for r in returns if str(r.id) == value]
            elif which == "order_id":
                # The original order's Shopify id. GUESS: an exchange order's id finds nothing.
                found = [r for r in returns if r.provider_order_id == value]
            else:
                # GUESS: the docs' example is '2222'; "#2222" is accepted as well.
                wanted = value.lstrip("#")
                found = [r for r in returns if r.order_name.lstrip("#") == wanted]
            if not found:
                # Loop answers "not found" with HTTP 200 and an error body.
                return 200, {}, NOT_FOUND
            # GUESS: with several returns on one order, the newest comes back.
            newest = max(found, key=lambda r: (r.created_at, r.id))
            return 200, {}, return_json(newest)

    # -- notes --

    def _find(self, raw_id: str) -> LoopReturn | None:
        return self.world.loop_returns.get(int(raw_id)) if raw_id.isdigit() else None

    def create_note(self, raw_id: str, body: bytes) -> Response:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        content = payload.get("content") if isinstance(payload, dict) else None
        if not isinstance(content, str) or not content.strip() or len(content) > NOTE_MAX:
            return 422, {}, NOTE_INVALID
        with self.world.lock:
            ret = self._find(raw_id)
            if ret is None:
                # GUESS: unknown return on an action endpoint: 404 with the details endpoint's message.
                return 404, {}, NOT_FOUND
            now = self.world.now()
            ret.notes.append(LoopNote(id=self.world.next_note_id(), content=content, created_at=now))
            ret.updated_at = now
        return 200, {}, True

    def list_notes(self, raw_id: str) -> Response:
        with self.world.lock:
            ret = self._find(raw_id)
            if ret is None:
                return 404, {}, NOT_FOUND  # GUESS, as for create_note
            if not ret.notes:
                # Loop's documented NoReturnNotes answer.
                return 422, {}, False
            # "documented": {"notes": [...]} with ISO times; "bare_array": what the field saw.
            shape = self.world.loop_notes_shape
            if shape == "bare_array":
                return 200, {}, [
                    {"id": n.id, "content": n.content, "created_at": n.created_at.strftime("%Y-%m-%d %H:%M:%S")}
                    for n in ret.notes
                ]
            return 200, {}, {"notes": [{"id": n.id, "content": n.content, "created_at": iso(n.created_at)}
                                       for n in ret.notes]}

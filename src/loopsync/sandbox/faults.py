"""Injected network and server faults, so retries and idempotency get exercised.

A ``FaultPlan`` decides, per API request, whether something goes wrong and how.
The spec string used by ``loopsync sandbox serve --faults`` and ``Sandbox(faults=...)``::

    5xx=0.1,drop=0.05,throttle=0.1,slow=0.1:0.5,malformed=0.05,seed=7

Each rate is a probability in [0, 1]; at most one fault hits a request, so the rates
must add up to at most 1. The kinds:

- ``5xx``: answered 502 or 503 by a "proxy" before the request reaches the store;
  nothing changes in the world.
- ``drop``: the connection is closed without any response, before routing.
- ``throttle``: Shopify's ``THROTTLED`` answer (HTTP 200) on GraphQL, a 429 with
  ``Retry-After`` on Loop and OAuth routes.
- ``slow``: ``slow=RATE:SECONDS`` sleeps that long, then answers normally.
- ``malformed``: the request *is* handled (mutations happen) but the body that
  comes back is cut short, so it is not valid JSON: the nastiest case for a client
  that must not repeat work.

The random generator is seeded, so the same seed and the same request sequence
give the same faults. ``/_sandbox/*`` routes are never faulted.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("5xx", "drop", "throttle", "slow", "malformed")


class FaultSpecError(ValueError):
    """A fault spec string that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    """One fault chosen for one request."""

    kind: str
    status: int | None = None  # 5xx: which status
    json_body: bool = False  # 5xx: JSON error body instead of an HTML page
    seconds: float = 0.0  # slow: how long


@dataclass
class FaultPlan:
    """Rates per fault kind, a seeded generator, and counters of what was injected."""

    server_error: float = 0.0
    drop: float = 0.0
    throttle: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.5
    malformed: float = 0.0
    seed: int | None = None
    counters: Counter[str] = field(default_factory=Counter, init=False)
    requests: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        rates = self.rates()
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise FaultSpecError("fault rates add up to more than 1")
        if self.slow_seconds < 0:
            raise FaultSpecError("slow seconds must not be negative")
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed if self.seed is not None else 0)

    # -- construction --

    @classmethod
    def parse(cls, spec: str, *, default_seed: int = 0) -> FaultPlan:
        """Parse ``"5xx=0.1,drop=0.05,slow=0.1:0.5,seed=7"``; an empty spec or "none" means no faults."""
        values: dict[str, float | int] = {}
        text = spec.strip()
        if text.lower() in ("", "none", "off"):
            return cls(seed=default_seed)
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            raw = raw.strip()
            if not sep or not raw:
                raise FaultSpecError(f"fault spec item {part!r} is not NAME=VALUE")
            try:
                if name == "seed":
                    values["seed"] = int(raw)
                elif name == "slow":
                    rate, _, seconds = raw.partition(":")
                    values["slow"] = float(rate)
                    if seconds:
                        values["slow_seconds"] = float(seconds)
                elif name in ("5xx", "drop", "throttle", "malformed"):
                    values["server_error" if name == "5xx" else name] = float(raw)
                else:
                    raise FaultSpecError(f"unknown fault kind {name!r}; known: {', '.join(KINDS)}, seed")
            except ValueError as exc:
                if isinstance(exc, FaultSpecError):
                    raise
                raise FaultSpecError(f"fault spec item {part!r} has a value that is not a number") from None
        values.setdefault("seed", default_seed)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, faults: str | FaultPlan | None, *, default_seed: int = 0) -> FaultPlan | None:
        if faults is None or isinstance(faults, FaultPlan):
            return faults
        return cls.parse(faults, default_seed=default_seed)

    # -- use --

    def rates(self) -> dict[str, float]:
        return {
            "5xx": self.server_error,
            "drop": self.drop,
            "throttle": self.throttle,
            "slow": self.slow,
            "malformed": self.malformed,
        }

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates().values())

    def draw(self) -> Fault | None:
        """Decide the fault for the next request (None: answer normally)."""
        with self._lock:
            self.requests += 1
            # Always two draws per request, so one kind's rate never shifts another's sequence.
            roll = self._rng.random()
            detail = self._rng.random()
            edge = 0.0
            for kind, rate in self.rates().items():
                edge += rate
                if roll < edge:
                    self.counters[kind] += 1
                    return self._fault(kind, detail)
            return None

    def _fault(self, kind: str, detail: float) -> Fault:
        if kind == "5xx":
            # A proxy in front of the store answers: 502 or 503, HTML or JSON.
            return Fault(kind, status=502 if detail < 0.5 else 503, json_body=(detail * 4) % 1 < 0.5)
        if kind == "slow":
            return Fault(kind, seconds=self.slow_seconds)
        return Fault(kind)

    def count(self, kind: str) -> int:
        with self._lock:
            return self.counters[kind]

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, **{kind: self.counters[kind] for kind in KINDS}}

    def describe(self) -> str:
        parts = [f"{kind}={rate:g}" for kind, rate in self.rates().items() if rate > 0 and kind != "slow"]
        if self.slow > 0:
            parts.append(f"slow={self.slow:g}:{self.slow_seconds:g}")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)


def server_error_body(fault: Fault) -> tuple[str, bytes]:
    """The body a proxy in front of the store would send: (content type, bytes)."""
    status = fault.status or 502
    reason = "Bad Gateway" if status == 502 else "Service Unavailable"
    if fault.json_body:
        return "application/json", json.dumps({"errors": f"{status} {reason}"}).encode()
    html = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    return "text/html; charset=utf-8", html.encode()


def truncate(body: bytes) -> bytes:
    """Cut a JSON body so it no longer parses (a connection that died mid-body, as the client sees it)."""
    cut = body[: len(body) // 2]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return b"{"  # half of a short scalar can still parse ("123" -> "1"); this never does

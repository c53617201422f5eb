"""What the Shopify and Loop clients share: a session, timeouts, one retry policy, redaction.

The retry policy is tenacity, restricted to failures the caller marks as worth
retrying (raised as ``Retry``), with a hard cap on attempts and on total time
spent waiting. A ``Retry`` may carry its own wait (Shopify's throttle maths, a
``Retry-After`` header); otherwise the wait is exponential with jitter.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity

from loopsync import __version__ as _version
from loopsync.errors import TransientApiError
from loopsync.models import CallStats

T = TypeVar("T")

DEFAULT_TIMEOUT = (5, 30)  # (connect, read) seconds
USER_AGENT = f"loopsync/{_version}"
REDACTED = "[redacted]"
# The longest single wait we accept from a server (Retry-After, throttle maths):
# past this the caller is better off failing and letting the next scan try again.
MAX_SINGLE_WAIT = 60.0
# Throttle waits are computed, not guessed, so they get their own, larger
# allowance that does not eat into the attempts kept for real failures.
MAX_THROTTLE_WAITS = 20


class _Session(requests.Session):
    """A Session that reads the proxy and CA settings from the environment once per host, not
    once per request: requests walks all of os.environ for every call, which on a scan of a
    big store cost more CPU than parsing the answers."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        parts = urlsplit(url or "")
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        found = self._environment.get(key)
        if found is None:
            found = self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return dict(found)


def make_session() -> requests.Session:
    session = _Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of a secret in ``text``.

    A last line of defence: messages are built without secrets in the first
    place, but a server echoing our request back must not smuggle one out.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def describe_request_error(exc: requests.RequestException) -> str:
    """A short sentence for a connection-level failure. Never includes headers."""
    if isinstance(exc, requests.Timeout):
        return "the request timed out"
    if isinstance(exc, requests.ConnectionError):
        return "the connection failed or was dropped"
    return f"the request failed ({type(exc).__name__})"


def parse_json(response: requests.Response) -> tuple[bool, Any]:
    """(ok, value): ok is False when the body is not JSON at all."""
    try:
        return True, response.json()
    except (ValueError, json.JSONDecodeError):
        return False, None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_SINGLE_WAIT)


class Retry(Exception):
    """Raised inside an attempt: this failure is worth another try.

    ``error`` is what the caller sees when the retries run out; ``wait`` (seconds)
    overrides the backoff; ``throttled`` failures count against their own limit.
    """

    def __init__(self, error: TransientApiError, *, wait: float | None = None, throttled: bool = False):
        super().__init__(error.message)
        self.error = error
        self.wait = wait
        self.throttled = throttled


class RetryingClient:
    """What both API clients share: one retry policy, each with its own budget, stats and clock."""

    stats: CallStats
    max_attempts: int
    max_total_wait: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        return call_with_retries(
            attempt,
            stats=self.stats,
            max_attempts=self.max_attempts,
            max_total_wait=self.max_total_wait,
            sleep=self.sleep,
            clock=self.clock,
        )


def call_with_retries(
    attempt: Callable[[], T],
    *,
    stats: CallStats,
    max_attempts: int,
    max_total_wait: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``attempt`` until it returns, raises something other than ``Retry``, or the budget is spent.

    When the budget is spent the last ``Retry.error`` is raised (a TransientApiError).
    """
    started = clock()
    failures = {"transient": 0, "throttled": 0}

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, Retry) and exc.wait is not None:
            return min(max(exc.wait, 0.0), MAX_SINGLE_WAIT)
        # Exponential in the number of real failures (throttle waits do not count), with
        # jitter so several loopsync processes do not retry in step.
        return backoff(failures["transient"])

    def stop(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception()
        kind = "throttled" if isinstance(exc, Retry) and exc.throttled else "transient"
        failures[kind] += 1
        if failures["transient"] >= max_attempts or failures["throttled"] > MAX_THROTTLE_WAITS:
            return True
        spent = max(state.idle_for, clock() - started)
        return spent + state.upcoming_sleep > max_total_wait

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        stats.retries += 1
        if isinstance(exc, Retry) and exc.throttled:
            stats.throttled += 1
        stats.waited_seconds += state.upcoming_sleep

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retry),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=False,
    )
    try:
        return retrying(attempt)
    except tenacity.RetryError as exc:
        last = exc.last_attempt.exception()
        assert isinstance(last, Retry)
        raise last.error from None


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th transient failure: 0.5, 1, 2, 4 ... (+ up to 0.5 s), at most 20."""
    return min(0.5 * 2 ** max(failures - 1, 0) + random.uniform(0, 0.5), 20.0)


def error_message_from_body(body: Any) -> str | None:
    """One message out of the many error shapes Loop (and others) send.

    Handles {"error": {...}|"..."}, {"errors": "..."}, {"errors": {"message": ...}},
    {"errors": [{"message": ...}, ...]}, Laravel's {"message": ..., "errors": {field: [...]}}.
    Returns None when the body carries no error.
    """
    if not isinstance(body, dict):
        return None
    if "error" in body and body["error"]:
        return _message_of(body["error"])
    errors = body.get("errors")
    if errors:
        # Laravel puts the summary in "message" and details per field in "errors".
        if isinstance(body.get("message"), str) and body["message"].strip():
            detail = _message_of(errors)
            summary = body["message"].strip()
            return summary if not detail or detail in summary else f"{summary} ({detail})"
        return _message_of(errors)
    return None


def _message_of(value: Any) -> str:
    if isinstance(value, str):
        return value.strip() or "unknown error"
    if isinstance(value, list):
        parts = [_message_of(item) for item in value if item]
        return "; ".join(parts) if parts else "unknown error"
    if isinstance(value, dict):
        for key in ("message", "detail", "error", "title"):
            if value.get(key):
                return _message_of(value[key])
        # Laravel field errors: {"content": ["The content field is required."]}
        parts = [_message_of(v) for v in value.values() if v and not isinstance(v, bool | int | float)]
        if parts:
            return "; ".join(parts)
        if value.get("code"):
            return f"error {value['code']}"
        return "unknown error"
    return str(value)


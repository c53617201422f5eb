"""One GraphQL request to Shopify: the POST, retries, pacing from throttleStatus, cost bookkeeping.

``Transport.execute`` is the one place a Shopify Admin GraphQL request is made.
It knows HTTP statuses, GraphQL ``errors`` and ``extensions.cost``; it knows
nothing of orders or holds.

Pacing uses what Shopify reports, not loopsync's estimate: Shopify runs a query
once the bucket holds its *requested* cost, so before each request the transport
waits until ``throttleStatus`` (``currentlyAvailable`` plus ``restoreRate`` times
the time since) covers the ``requestedQueryCost`` Shopify last reported for the
same operation at the same page sizes. Only an operation not yet answered is
paced on ``shopify.cost.estimate_cost``. The bucket Shopify reports already has
the refund of requested minus actual in it. What is known of the bucket lives in a
``limits.CostBucket``, which also counts the points of requests still in flight:
serve's worker threads share one, so that they take turns instead of each spending
the whole bucket.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

from loopsync import http
from loopsync.errors import ApiError, ConfigError, CredentialsError, GraphQLError, TransientApiError
from loopsync.limits import CostBucket
from loopsync.models import CallStats, ThrottleStatus
from loopsync.shopify.auth import Auth, ClientCredentials, StaticToken, grant_token
from loopsync.shopify.cost import estimate_cost

# GUESS: Shopify does not document how long to wait when a THROTTLED answer has no
# throttleStatus (seen on some stores); two seconds restores 200 points on Standard.
THROTTLE_FALLBACK_WAIT = 2.0


class _Unauthorized(Exception):
    """Shopify answered 401: the token is wrong or expired."""


class Transport(http.RetryingClient):
    def __init__(
        self,
        shop_domain: str,
        auth: Auth,
        *,
        graphql_url: str,
        token_url: str,
        session: requests.Session,
        timeout: tuple[float, float],
        max_attempts: int,
        max_total_wait: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        bucket: CostBucket | None = None,
    ) -> None:
        self.shop_domain = shop_domain
        self.auth = auth
        self.graphql_url = graphql_url
        self.token_url = token_url
        self.session = session
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.sleep = sleep
        self.clock = clock
        self.stats = CallStats()
        # Shared by every client of serve's worker (limits.py); a scan's own otherwise.
        self.bucket = bucket or CostBucket(clock)
        # requestedQueryCost as Shopify reported it, by operation and page sizes.
        self._requested: dict[tuple, float] = {}

    def execute(self, document: str, variables: dict | None = None, operation_name: str | None = None) -> dict:
        """Send one GraphQL operation and return its ``data``.

        Raises CredentialsError, GraphQLError, TransientApiError (retries spent) or ApiError.
        Mutations are retried like queries because each one loopsync sends is safe to
        repeat: a second hold with the same handle fails with DUPLICATE_FULFILLMENT_HOLD_HANDLE,
        tagsAdd adds to a set, and a release names its hold ids.
        """
        operation = operation_name or _operation_name(document)
        variables = variables or {}
        estimated = estimate_cost(document, variables)
        renewed = False
        while True:
            token = self._access_token(force=False)
            try:
                return self._with_retries(
                    lambda: self._attempt(document, variables, operation, token, estimated)  # noqa: B023
                )
            except _Unauthorized:
                if renewed or not isinstance(self.auth, ClientCredentials):
                    raise CredentialsError(
                        "Shopify rejected the access token (HTTP 401): check the app is installed on "
                        f"{self.shop_domain} and the token or client credentials are current."
                    ) from None
                self._access_token(force=True)
                renewed = True

    def _attempt(self, document: str, variables: dict, operation: str, token: str, estimated: int) -> dict:
        sizes = _sizes(operation, variables)
        requested = self._requested.get(sizes, estimated)
        wait = self.bucket.reserve(requested)
        throttle = None
        try:
            # Inside the try: a stop raised while waiting must give the reservation back too.
            if wait > 0:
                self.stats.waited_seconds += wait
                self.sleep(wait)
            self.stats.count(operation)
            self.stats.estimated_cost += estimated
            response = self.session.post(
                self.graphql_url,
                json={"query": document, "variables": variables, "operationName": operation},
                headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                timeout=self.timeout,
            )
            body = self._read(response, operation)
            throttle = self._record_cost(body.get("extensions"), sizes)
        except requests.RequestException as exc:
            raise http.Retry(
                TransientApiError(f"Shopify could not be reached ({operation}): {http.describe_request_error(exc)}.")
            ) from None
        finally:
            self.bucket.settle(requested, throttle)
        return self._data(response, body, operation, estimated)

    def _read(self, response: requests.Response, operation: str) -> dict:
        status = response.status_code
        self._raise_for_status(response, operation)
        ok, body = http.parse_json(response)
        if not ok or not isinstance(body, dict):
            if status == 200:
                raise http.Retry(TransientApiError(f"Shopify sent an unreadable answer to {operation}."))
            raise ApiError(f"Shopify answered {operation} with HTTP {status} and no readable body.")
        return body

    def _data(self, response: requests.Response, body: dict, operation: str, estimated: int) -> dict:
        status = response.status_code
        errors = body.get("errors")
        if errors:
            if _is_throttled(errors):
                raise http.Retry(
                    TransientApiError(f"Shopify kept throttling {operation}."),
                    wait=self._throttle_wait(body.get("extensions"), estimated),
                    throttled=True,
                )
            first = _first_error_message(errors)
            partial = " (some data came back, but the answer is incomplete)" if body.get("data") else ""
            message = http.redact(f"Shopify rejected {operation}: {first}{partial}.", self.auth.secrets())
            raise GraphQLError(message, errors if isinstance(errors, list) else [{"message": str(errors)}])
        if status != 200:
            raise ApiError(f"Shopify answered {operation} with HTTP {status}.")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ApiError(f"Shopify's answer to {operation} carried no data.")
        return data

    def _raise_for_status(self, response: requests.Response, operation: str) -> None:
        """The HTTP statuses that decide the outcome before the body is read."""
        status = response.status_code
        if status == 401:
            raise _Unauthorized()
        if status == 403:
            raise CredentialsError(
                f"Shopify refused {operation} (HTTP 403): the app may be uninstalled or lack a needed scope."
            )
        if status == 404:
            raise ConfigError(f"Shopify answered 404 for {self.graphql_url}: check the shop domain.")
        if status == 429:
            wait = http.parse_retry_after(response.headers.get("Retry-After"))
            raise http.Retry(
                TransientApiError(f"Shopify kept throttling {operation} (HTTP 429)."),
                wait=wait if wait is not None else THROTTLE_FALLBACK_WAIT,
                throttled=True,
            )
        if status >= 500:
            raise http.Retry(TransientApiError(f"Shopify kept failing on {operation} (HTTP {status})."))

    def _access_token(self, *, force: bool) -> str:
        if isinstance(self.auth, StaticToken):
            return self.auth.token
        token = None if force else self.auth.usable_token()
        if token:
            return token
        credentials = self.auth
        return self._with_retries(
            lambda: grant_token(self.session, self.token_url, credentials, timeout=self.timeout, stats=self.stats)
        )

    # --- cost -----------------------------------------------------------------

    def _record_cost(self, extensions: Any, sizes: tuple) -> ThrottleStatus | None:
        """Counts the answer's cost; the throttleStatus it reported, for the bucket."""
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return None
        requested = _number(cost.get("requestedQueryCost"))
        if requested is not None:
            self._requested[sizes] = requested
        self.stats.requested_cost += requested or 0.0
        self.stats.actual_cost += _number(cost.get("actualQueryCost")) or 0.0
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            maximum = _number(status.get("maximumAvailable"))
            available = _number(status.get("currentlyAvailable"))
            rate = _number(status.get("restoreRate"))
            if maximum is not None and available is not None and rate:
                return ThrottleStatus(maximum, available, rate)
        return None

    def _throttle_wait(self, extensions: Any, estimated: int) -> float:
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        cost = cost if isinstance(cost, dict) else {}
        requested = _number(cost.get("requestedQueryCost")) or float(estimated)
        status = cost.get("throttleStatus")
        if not isinstance(status, dict):
            return THROTTLE_FALLBACK_WAIT
        maximum = _number(status.get("maximumAvailable"))
        available = _number(status.get("currentlyAvailable"))
        rate = _number(status.get("restoreRate"))
        if available is None or not rate:
            return THROTTLE_FALLBACK_WAIT
        if maximum is not None and requested > maximum:
            raise ApiError(
                f"A query asks for {requested:.0f} cost points but this store's bucket holds only {maximum:.0f}."
            )
        # The bucket held less than the request when Shopify looked; wait for the difference.
        return max(requested - available, 0.0) / rate or 1.0 / rate


def _sizes(operation: str, variables: dict) -> tuple:
    """What a document's requested cost depends on: the operation and its page and batch sizes."""
    return (operation, *sorted(
        (name, len(value) if isinstance(value, list) else value)
        for name, value in variables.items()
        if isinstance(value, list) or (isinstance(value, int) and not isinstance(value, bool))
    ))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_throttled(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict) and isinstance(e.get("extensions"), dict) and e["extensions"].get("code") == "THROTTLED"
        for e in errors
    )


def _first_error_message(errors: Any) -> str:
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict):
            message = first.get("message") or "unknown error"
            code = (first.get("extensions") or {}).get("code") if isinstance(first.get("extensions"), dict) else None
            return f"{message} ({code})" if code else message
        return str(first)
    return str(errors)


_OPERATION = re.compile(r"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _operation_name(document: str) -> str:
    match = _OPERATION.search(document)
    return match.group(1) if match else "anonymous"

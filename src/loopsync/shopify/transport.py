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
the refund of requested minus actual in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

from loopsync import http
from loopsync.errors import ApiError, ConfigError, CredentialsError, GraphQLError, TransientApiError
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
        self.throttle: ThrottleStatus | None = None
        self._throttle_seen_at = 0.0
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
        self._pace(self._requested.get(sizes, estimated))
        self.stats.count(operation)
        self.stats.estimated_cost += estimated
        try:
            response = self.session.post(
                self.graphql_url,
                json={"query": document, "variables": variables, "operationName": operation},
                headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise http.Retry(
                TransientApiError(f"Shopify could not be reached ({operation}): {http.describe_request_error(exc)}.")
            ) from None
        status = response.status_code
        self._raise_for_status(response, operation)
        ok, body = http.parse_json(response)
        if not ok or not isinstance(body, dict):
            if status == 200:
                raise http.Retry(TransientApiError(f"Shopify sent an unreadable answer to {operation}."))
            raise ApiError(f"Shopify answered {operation} with HTTP {status} and no readable body.")
        self._record_cost(body.get("extensions"), sizes)
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

    def _record_cost(self, extensions: Any, sizes: tuple) -> None:
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return
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
                self.throttle = ThrottleStatus(maximum, available, rate)
                self._throttle_seen_at = self.clock()

    def available_now(self) -> float | None:
        """Points Shopify should have restored by now, from the last throttleStatus seen."""
        if self.throttle is None:
            return None
        elapsed = max(self.clock() - self._throttle_seen_at, 0.0)
        return min(self.throttle.maximum_available, self.throttle.currently_available + elapsed * self.throttle.restore_rate)

    def _pace(self, requested: float) -> None:
        """Sleep just long enough for the bucket to hold ``requested`` points, instead of being throttled."""
        available = self.available_now()
        if available is None or self.throttle is None or requested <= available:
            return
        needed = min(requested, self.throttle.maximum_available)
        wait = min((needed - available) / self.throttle.restore_rate, http.MAX_SINGLE_WAIT)
        if wait > 0:
            self.stats.waited_seconds += wait
            self.sleep(wait)

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

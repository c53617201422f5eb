"""The rate limits serve's reconcile threads share (limits.py), on a clock the test turns."""

from __future__ import annotations

import threading

import pytest

from loopsync.limits import CostBucket, RequestWindow
from loopsync.models import ThrottleStatus


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_never_seen_does_not_wait():
    bucket = CostBucket(Clock())
    assert bucket.available_now() is None
    assert bucket.reserve(500) == 0


def test_a_request_waits_for_what_those_in_flight_will_take():
    clock = Clock()
    bucket = CostBucket(clock)
    bucket.reserve(10)
    bucket.settle(10, ThrottleStatus(1000, 300, 50))
    assert bucket.reserve(200) == 0  # 300 there, nothing else out
    # 100 left once the first is charged: the next 200 waits for 100 more at 50 a second.
    assert bucket.reserve(200) == pytest.approx(2.0)
    # Both answered: Shopify's own figure replaces the estimate and nothing is in flight.
    bucket.settle(200, ThrottleStatus(1000, 120, 50))
    bucket.settle(200, None)
    assert bucket.reserve(100) == 0
    clock.now += 1
    assert bucket.available_now() == pytest.approx(170)


def test_a_request_bigger_than_the_bucket_waits_only_for_a_full_bucket():
    bucket = CostBucket(Clock())
    bucket.reserve(1)
    bucket.settle(1, ThrottleStatus(100, 0, 10))
    assert bucket.reserve(5000) == pytest.approx(10.0)


def test_a_window_spaces_the_request_over_the_limit_60_seconds_after_the_one_it_replaces():
    clock = Clock()
    window = RequestWindow(3, clock)
    assert [window.reserve() for _ in range(3)] == [0, 0, 0]
    clock.now += 10
    assert window.reserve() == pytest.approx(50)
    # Taken places count: the next one goes 60 s after the second, not at the same time.
    assert window.reserve() == pytest.approx(50)
    clock.now += 61
    assert window.reserve() == pytest.approx(0)


def test_threads_reserving_together_get_every_place_once():
    clock = Clock()
    window = RequestWindow(5, clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        wait = window.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0] * 5 + [60] * 5 + [120] * 2


def test_a_stop_while_waiting_for_the_bucket_gives_the_reservation_back():
    import requests

    from loopsync.interrupts import StopRequested
    from loopsync.shopify import StaticToken
    from loopsync.shopify.transport import Transport

    clock = Clock()
    bucket = CostBucket(clock)
    bucket.reserve(1)
    bucket.settle(1, ThrottleStatus(1000, 0, 10))

    def stopped(_seconds: float) -> None:
        raise StopRequested(15)

    transport = Transport("shop.myshopify.com", StaticToken("shpat_test"), graphql_url="http://127.0.0.1:9/graphql",
                          token_url="http://127.0.0.1:9/token", session=requests.Session(), timeout=(1, 1),
                          max_attempts=1, max_total_wait=1, sleep=stopped, clock=clock, bucket=bucket)
    with pytest.raises(StopRequested):
        transport.execute("query Shop { shop { name } }")
    # Nothing is out: the next request waits only for the bucket itself (50 points at 10 a second).
    assert bucket.reserve(50) == pytest.approx(5.0)

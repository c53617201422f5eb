"""Fault injection: parsing, seeded determinism, and each fault as a client sees it over HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests

from loopsync.sandbox.faults import FaultPlan, FaultSpecError, truncate
from loopsync.sandbox.server import Sandbox

KEY = "loop_sandbox_demo_key"


def _list(sb: Sandbox, session: requests.Session) -> requests.Response:
    return session.get(f"{sb.loop_url}/warehouse/return/details", params={"return_id": "1"},
                       headers={"X-Authorization": KEY}, timeout=5)


# -- the plan itself --


def test_parse_full_spec():
    plan = FaultPlan.parse("5xx=0.1,drop=0.05,throttle=0.1,slow=0.1:0.5,malformed=0.05,seed=7")
    assert plan.rates() == {"5xx": 0.1, "drop": 0.05, "throttle": 0.1, "slow": 0.1, "malformed": 0.05}
    assert plan.slow_seconds == 0.5 and plan.seed == 7
    assert FaultPlan.parse(plan.describe()).rates() == plan.rates()


def test_parse_defaults_and_empty():
    assert FaultPlan.parse("", default_seed=3).active is False
    assert FaultPlan.parse("none").active is False
    plan = FaultPlan.parse("slow=0.2", default_seed=3)
    assert plan.seed == 3 and plan.slow_seconds == 0.5


@pytest.mark.parametrize("spec", ["5xx", "5xx=abc", "fire=0.1", "5xx=1.5", "5xx=0.6,drop=0.6", "slow=0.1:-1",
                                  "seed=x"])
def test_parse_rejects_bad_specs(spec):
    with pytest.raises(FaultSpecError):
        FaultPlan.parse(spec)


def test_same_seed_same_faults_and_rates_hold():
    def kinds(seed: int) -> list[str | None]:
        plan = FaultPlan(server_error=0.2, drop=0.1, seed=seed)
        return [f.kind if (f := plan.draw()) else None for _ in range(5000)]

    first, again, other = kinds(7), kinds(7), kinds(8)
    assert first == again
    assert first != other
    assert 900 <= first.count("5xx") <= 1100
    assert 420 <= first.count("drop") <= 580


def test_truncate_never_parses():
    for body in (b"true", b"false", b"123", b"[]", b'{"data":{"orders":[]}}', b"{}"):
        with pytest.raises(ValueError):
            json.loads(truncate(body))


# -- over HTTP --


def test_5xx_rate_over_http_and_counters():
    with Sandbox(faults="5xx=0.2,seed=11") as sb, requests.Session() as session:
        statuses = [_list(sb, session).status_code for _ in range(1000)]
        bad = [s for s in statuses if s >= 500]
        assert set(bad) <= {502, 503}
        assert 150 <= len(bad) <= 250
        assert sb.faults.count("5xx") == len(bad)
        assert sb.faults.summary()["requests"] == 1000
        logged = [e for e in sb.world.log if e.fault == "5xx"]
        assert len(logged) == len(bad) and all(e.api == "loop" for e in logged)
        # A 5xx never reaches the store, so only the other requests are Loop-handled entries.
        assert len([e for e in sb.world.log if e.api == "loop" and e.fault is None]) == 1000 - len(bad)
        assert session.get(f"{sb.url}/_sandbox/faults", timeout=5).json()["5xx"] == len(bad)
        # Error answers keep the connection alive, as a proxy's would.
        assert sb.connections_accepted == 1


def test_same_seed_gives_same_sequence_over_http():
    def run() -> list[int]:
        with Sandbox(faults="5xx=0.3,throttle=0.2,seed=5") as sb, requests.Session() as session:
            return [_list(sb, session).status_code for _ in range(200)]

    assert run() == run()


def test_5xx_body_is_html_or_json():
    seen = set()
    with Sandbox(faults=FaultPlan(server_error=1.0, seed=1)) as sb, requests.Session() as session:
        for _ in range(40):
            response = _list(sb, session)
            assert response.status_code in (502, 503)
            seen.add(response.headers["Content-Type"].split(";")[0])
    assert seen == {"text/html", "application/json"}


def test_drop_closes_connection_without_answer():
    with Sandbox(faults="drop=1.0") as sb:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{sb.loop_url}/warehouse/return/list", headers={"X-Authorization": KEY}, timeout=5)
        assert [e.fault for e in sb.world.log] == ["drop"]
        assert sb.world.log[0].status == 0


def test_throttle_on_loop_is_429_with_retry_after():
    with Sandbox(faults="throttle=1.0") as sb:
        response = requests.get(f"{sb.loop_url}/warehouse/return/list", headers={"X-Authorization": KEY}, timeout=5)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1


def test_throttle_on_graphql_is_shopify_throttled_200():
    with Sandbox(faults="throttle=1.0") as sb:
        response = requests.post(f"{sb.url}/admin/api/2026-10/graphql.json", json={"query": "{ shop { name } }"},
                                 headers={"X-Shopify-Access-Token": sb.credentials["shopify_token"]}, timeout=5)
        assert response.status_code == 200
        body = response.json()
        assert "data" not in body
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
        assert sb.world.log[-1].fault == "throttle" and sb.world.log[-1].api == "shopify"


def test_malformed_body_after_the_work_is_done():
    with Sandbox(faults="malformed=1.0") as sb:
        ret = next(iter(sb.world.loop_returns.values()))
        response = requests.post(f"{sb.loop_url}/warehouse/return/{ret.id}/note", json={"content": "hi"},
                                 headers={"X-Authorization": KEY}, timeout=5)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        # The note was written even though the client could not read the answer.
        assert [n.content for n in ret.notes] == ["hi"]
        assert sb.world.log[-1].fault == "malformed"


def test_slow_answers_late_but_correctly():
    with Sandbox(faults="slow=1.0:0.3") as sb:
        started = time.monotonic()
        response = requests.get(f"{sb.loop_url}/warehouse/return/list", headers={"X-Authorization": KEY}, timeout=5)
        assert time.monotonic() - started >= 0.3
        assert response.status_code == 200 and isinstance(response.json(), list)
        assert sb.faults.count("slow") == 1


def test_sandbox_routes_are_never_faulted():
    with Sandbox(faults="5xx=0.5,drop=0.5") as sb, requests.Session() as session:
        for _ in range(30):
            assert session.get(f"{sb.url}/_sandbox/state", timeout=5).status_code == 200
        assert sb.faults.summary()["requests"] == 0

"""LoopClient against a scripted local server: body shapes, key checks, notes, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from loopsync.errors import ApiError, CredentialsError, OutcomeUnknownError, TransientApiError
from loopsync.http import error_message_from_body, parse_retry_after
from loopsync.loop import KEY_REJECTED, NOTE_MAX_CHARS, LoopClient
from support.fakehttp import FakeTime, Recorded, Reply, closed_port_url

API_KEY = "loop_key_very_secret_789"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

RETURN = {
    "id": 5501,
    "state": "open",
    "order_name": "#1086",
    "provider_order_id": "4803021602967",
    "created_at": "2026-11-20 10:00:00",
    "exchanges": [
        {
            "exchange_id": "11801246",
            "exchange_order_id": 4804378558615,
            "exchange_order_name": "EXC-1086-1",
            "variant_id": "40000000001",
            "out_of_stock": False,
        }
    ],
}


def client_for(server, fake_time, **kwargs):
    return LoopClient(
        API_KEY, base_url=server.url, sleep=fake_time.sleep, clock=fake_time.clock, now=lambda: NOW, **kwargs
    )


def assert_no_secret(exc: BaseException) -> None:
    assert API_KEY not in str(exc) and API_KEY not in repr(exc)


# --- key check ------------------------------------------------------------------


def test_check_key_ok_sends_a_cheap_probe(server, fake_time):
    server.script(Reply(body={"returns": [], "nextPageUrl": None}))
    client = client_for(server, fake_time)
    client.check_key()
    (request,) = server.requests
    assert request.path == "/api/v1/warehouse/return/list"
    assert request.headers["x-authorization"] == API_KEY
    assert request.param("paginate") == "true" and request.param("pageSize") == "1"
    assert request.param("from") == "2026-11-26T11:00:00Z" and request.param("to") == "2026-11-26T12:00:00Z"
    assert API_KEY not in repr(client)


@pytest.mark.parametrize(
    "status,body",
    [
        (401, {"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}}),
        (401, {"errors": "Unauthorized."}),
        (403, {"message": "Forbidden"}),
    ],
)
def test_check_key_rejected(server, fake_time, status, body):
    server.script(Reply(status=status, body=body))
    with pytest.raises(CredentialsError) as info:
        client_for(server, fake_time).check_key()
    assert str(info.value) == KEY_REJECTED == "Loop rejected this API key — check it has the Returns permission."
    assert len(server.requests) == 1
    assert_no_secret(info.value)


# --- return details ---------------------------------------------------------------


def test_return_details_parses(server, fake_time):
    server.script(Reply(body=RETURN))
    ret = client_for(server, fake_time).return_details(order_id=4803021602967)
    assert server.requests[0].param("order_id") == "4803021602967"
    assert ret.id == 5501 and ret.state == "open" and ret.provider_order_id == "4803021602967"
    assert ret.exchanges[0].exchange_order_id == 4804378558615
    assert ret.exchanges[0].exchange_order_name == "EXC-1086-1"
    assert ret.exchanges[0].variant_id == "40000000001"


def test_return_details_top_level_exchange_fields(server, fake_time):
    body = {"id": "12", "state": "closed", "exchange_order_name": "EXC-9-1", "exchange_order_id": "77"}
    server.script(Reply(body=body))
    ret = client_for(server, fake_time).return_details(return_id=12)
    assert ret.exchanges[0].exchange_order_id == 77 and ret.exchanges[0].exchange_order_name == "EXC-9-1"


def test_return_details_200_with_error_body_is_not_found(server, fake_time):
    server.script(Reply(body={"error": {"message": "No return found with this ID."}}))
    assert client_for(server, fake_time).return_details(order_name="1086") is None


def test_return_details_needs_exactly_one_identifier(server, fake_time):
    client = client_for(server, fake_time)
    with pytest.raises(ValueError):
        client.return_details()
    with pytest.raises(ValueError):
        client.return_details(return_id=1, order_name="2")
    assert server.requests == []


def test_return_details_422_is_an_api_error_with_loops_message(server, fake_time):
    server.script(Reply(status=422, body={"message": "The given data was invalid.", "errors": {"order_id": ["must be an integer"]}}))
    with pytest.raises(ApiError, match=r"The given data was invalid\. \(must be an integer\)"):
        client_for(server, fake_time).return_details(order_id="x")


def test_return_without_id_is_an_api_error(server, fake_time):
    server.script(Reply(body={"state": "open"}))
    with pytest.raises(ApiError, match="without an id"):
        client_for(server, fake_time).return_details(return_id=1)


# --- listing ------------------------------------------------------------------------


def test_iter_returns_follows_cursors_per_state_and_window(server, fake_time):
    def route(request: Recorded) -> Reply:
        state = request.param("state")
        cursor = request.param("cursor")
        if state == "open" and cursor is None:
            return Reply(body={"returns": [RETURN], "nextPageUrl": "https://elsewhere.example/list?cursor=abc&state=open"})
        if state == "open" and cursor == "abc":
            return Reply(body={"returns": [dict(RETURN, id=5502)], "nextPageUrl": None})
        if state == "review":
            return Reply(body={"returns": [dict(RETURN, id=5503, state="review"), RETURN], "nextPageUrl": None})
        return Reply(body={"returns": [], "nextPageUrl": None})

    server.fallback = route
    since = NOW - timedelta(days=200)
    returns = list(client_for(server, fake_time).iter_returns(since=since, until=NOW))
    assert [r.id for r in returns] == [5501, 5502, 5503]  # 5501 seen twice, yielded once
    # 200 days → two windows, each ≤ 120 days, each read once per state (+ one cursor page)
    windows = {(r.param("from"), r.param("to")) for r in server.requests}
    assert len(windows) == 2
    for start, end in windows:
        span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
        assert span <= timedelta(days=120)
    assert {r.param("state") for r in server.requests} == {"open", "closed", "expired", "review"}
    assert all(r.param("filter") == "updated_at" and r.param("paginate") == "true" for r in server.requests)
    cursor_request = next(r for r in server.requests if r.param("cursor") == "abc")
    # the cursor is re-applied to our own parameters on our own host
    assert cursor_request.param("state") == "open" and cursor_request.param("from") is not None


def test_iter_returns_422_is_an_api_error(server, fake_time):
    server.script(Reply(status=422, body={"errors": {"message": "The date range may not exceed 120 days."}}))
    with pytest.raises(ApiError, match="120 days"):
        list(client_for(server, fake_time).iter_returns(since=NOW - timedelta(days=1), until=NOW, states=("open",)))


# --- notes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,body,expected",
    [
        (200, {"notes": [{"id": 1, "content": "hello", "created_at": "2023-11-07T05:31:56Z"}]}, [(1, "hello")]),
        (200, [{"id": 2, "content": "bare", "created_at": "2023-04-17 22:56:54"}], [(2, "bare")]),
        (422, False, []),
    ],
)
def test_notes_three_shapes(server, fake_time, status, body, expected):
    server.script(Reply(status=status, body=body))
    notes = client_for(server, fake_time).notes(5501)
    assert [(n.id, n.content) for n in notes] == expected
    assert server.requests[0].path == "/api/v1/warehouse/return/5501/notes"


def test_notes_error_body(server, fake_time):
    server.script(Reply(status=404, body={"errors": [{"message": "Return not found"}]}))
    with pytest.raises(ApiError, match="Return not found"):
        client_for(server, fake_time).notes(1)


def test_create_note_ok(server, fake_time):
    server.script(Reply(body=True))
    client_for(server, fake_time).create_note(5501, "Pre-order: ships in March")
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/api/v1/warehouse/return/5501/note"
    assert request.json() == {"content": "Pre-order: ships in March"}


def test_create_note_length_limit_checked_before_sending(server, fake_time):
    server.script(Reply(body=True))
    client = client_for(server, fake_time)
    with pytest.raises(ValueError, match="255"):
        client.create_note(1, "x" * (NOTE_MAX_CHARS + 1))
    assert server.requests == []
    client.create_note(1, "x" * NOTE_MAX_CHARS)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "status,body",
    [
        (200, {"errors": {"message": "Content is required and must be less than 255 characters."}}),
        (422, {"errors": {"message": "Content is required and must be less than 255 characters."}}),
    ],
)
def test_create_note_error_bodies(server, fake_time, status, body):
    server.script(Reply(status=status, body=body))
    with pytest.raises(ApiError, match="must be less than 255") as info:
        client_for(server, fake_time).create_note(1, "hi")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert len(server.requests) == 1


def test_create_note_dropped_connection_is_outcome_unknown_and_not_resent(server, fake_time):
    server.script(Reply(drop=True), Reply(body=True))
    with pytest.raises(OutcomeUnknownError) as info:
        client_for(server, fake_time).create_note(1, "hi")
    assert len(server.requests) == 1
    assert_no_secret(info.value)


def test_create_note_timeout_is_outcome_unknown(server, fake_time):
    server.script(Reply(delay=0.4, body=True))
    with pytest.raises(OutcomeUnknownError, match="timed out"):
        client_for(server, fake_time, timeout=(1, 0.1)).create_note(1, "hi")
    assert len(server.requests) == 1


def test_create_note_5xx_is_outcome_unknown(server, fake_time):
    server.script(Reply(status=502, raw="bad gateway"), Reply(body=True))
    with pytest.raises(OutcomeUnknownError, match="HTTP 502"):
        client_for(server, fake_time).create_note(1, "hi")
    assert len(server.requests) == 1


def test_create_note_429_is_retried_after_retry_after(server, fake_time):
    server.script(Reply(status=429, body={"message": "Too Many Attempts."}, headers={"Retry-After": "7"}), Reply(body=True))
    client_for(server, fake_time).create_note(1, "hi")
    assert fake_time.sleeps == [7.0]
    assert len(server.requests) == 2


def test_create_note_never_sent_is_retried():
    fake_time = FakeTime()
    client = LoopClient(API_KEY, base_url=closed_port_url(), sleep=fake_time.sleep, clock=fake_time.clock, max_attempts=2)
    with pytest.raises(TransientApiError) as info:
        client.create_note(1, "hi")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert len(fake_time.sleeps) == 1
    assert_no_secret(info.value)


def test_create_note_401(server, fake_time):
    server.script(Reply(status=401, body={"errors": "Unauthorized."}))
    with pytest.raises(CredentialsError, match="Returns permission"):
        client_for(server, fake_time).create_note(1, "hi")


# --- retries on GETs -------------------------------------------------------------------


def test_get_429_honours_retry_after_http_date(server, fake_time):
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.script(Reply(status=429, headers={"Retry-After": later}, body={}), Reply(body=RETURN))
    client_for(server, fake_time).return_details(return_id=5501)
    assert len(fake_time.sleeps) == 1 and 25 <= fake_time.sleeps[0] <= 30


def test_retry_after_is_capped():
    assert parse_retry_after("3600") == 60.0
    assert parse_retry_after("junk") is None
    assert parse_retry_after(None) is None


def test_get_5xx_dropped_and_malformed_are_retried(server, fake_time):
    server.script(Reply(status=500, raw="oops"), Reply(drop=True), Reply(raw="<html>"), Reply(body=RETURN))
    assert client_for(server, fake_time).return_details(return_id=5501).id == 5501
    assert len(server.requests) == 4


def test_get_gives_up_after_max_attempts(server, fake_time):
    server.script(*[Reply(status=503, body={}) for _ in range(5)])
    with pytest.raises(TransientApiError, match="HTTP 503") as info:
        client_for(server, fake_time).notes(1)
    assert len(server.requests) == 5
    assert_no_secret(info.value)


def test_get_timeouts_give_up(server, fake_time):
    server.script(Reply(delay=0.4, body={}), Reply(delay=0.4, body={}))
    with pytest.raises(TransientApiError, match="timed out"):
        client_for(server, fake_time, timeout=(1, 0.1), max_attempts=2).notes(1)


def test_error_body_shapes():
    assert error_message_from_body({"error": {"code": "401", "message": "Unauthorized."}}) == "Unauthorized."
    assert error_message_from_body({"errors": "Unauthorized."}) == "Unauthorized."
    assert error_message_from_body({"errors": {"message": "Too long"}}) == "Too long"
    assert error_message_from_body({"errors": [{"message": "a"}, {"message": "b"}]}) == "a; b"
    assert error_message_from_body({"message": "Invalid.", "errors": {"content": ["Required."]}}) == "Invalid. (Required.)"
    assert error_message_from_body({"returns": []}) is None
    assert error_message_from_body(True) is None


# --- against the real sandbox ---------------------------------------------------------


def test_sandbox_returns_and_notes_round_trip():
    from loopsync.sandbox.server import Sandbox

    with Sandbox() as sb:
        key = sb.credentials["loop_api_key"]
        client = LoopClient(key, base_url=sb.url)
        client.check_key()
        now = datetime.now(UTC)
        returns = list(client.iter_returns(since=now - timedelta(days=30), until=now + timedelta(days=1)))
        assert any(r.state == "review" for r in returns)  # asked for explicitly, not Loop's default
        ret = next(r for r in returns if r.exchanges and r.exchanges[0].exchange_order_name == "EXC-1086-1")
        assert client.return_details(order_id=ret.provider_order_id).id == ret.id
        assert client.return_details(return_id=987654321) is None
        before = client.notes(ret.id)
        client.create_note(ret.id, "Pre-order: ships March 15")
        after = client.notes(ret.id)
        assert [n.content for n in after[len(before):]] == ["Pre-order: ships March 15"]
        with pytest.raises(CredentialsError, match="Returns permission") as info:
            LoopClient("loop_sandbox_no_scope_key", base_url=sb.url).check_key()
        assert "loop_sandbox_no_scope_key" not in str(info.value)


def test_a_key_echoed_by_loop_is_redacted(server, fake_time):
    server.script(Reply(status=422, body={"errors": {"message": f"bad key {API_KEY} for this note"}}))
    with pytest.raises(ApiError, match=r"\[redacted\]") as info:
        client_for(server, fake_time).create_note(1, "hi")
    assert_no_secret(info.value)


def test_the_client_paces_itself_under_loops_per_minute_limit(server, fake_time, monkeypatch):
    """Loop allows 300 requests a minute per key: past our limit a request waits for the window, no 429."""
    import loopsync.loop

    assert 250 <= loopsync.loop.REQUESTS_PER_MINUTE < 300
    monkeypatch.setattr(loopsync.loop, "REQUESTS_PER_MINUTE", 5)  # the same rule, fewer requests
    server.script(*[Reply(body={"notes": []}) for _ in range(8)])
    client = client_for(server, fake_time)
    for _ in range(5):
        client.notes(5501)
    assert fake_time.sleeps == []
    fake_time.now += 10  # ten seconds into the minute
    client.notes(5501)
    assert fake_time.sleeps == [pytest.approx(50.0)]
    fake_time.now += 1
    client.notes(5501)  # the window has moved on: the first five have aged out together
    assert len(fake_time.sleeps) == 1
    assert client.stats.requests == 7

"""The hold guard's records (m006): outside releases counted once each, a fight given up, a closed hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from loopsync.store import Store, migrations

FO = "gid://shopify/FulfillmentOrder/1"
ORDER = "gid://shopify/Order/1"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _held(s: Store, hold_id: str):
    return s.holds.upsert_hold(FO, order_id=ORDER, order_name="EXC-1-1", hold_id=hold_id, handle="loopsync-preorder",
                         window="Spring", variant_ids=["v"])


def test_m006_keeps_holds_of_every_status_and_accepts_closed(tmp_path):
    path = tmp_path / "state.db"
    db = Database(path)
    migrations.apply(db, stop_before="m006_hold_guard")
    db.execute(
        """INSERT INTO holds (fulfillment_order_id, order_id, handle, variant_ids, placed_at, status, released_by)
           VALUES (?, ?, 'loopsync-preorder', '[]', '2026-01-02T00:00:00+00:00', 'released_externally', 'external')""",
        [FO, ORDER],
    )
    db.close()
    with Store.open(path) as s:
        assert s.holds.hold(FO).status == "released_externally"
        _held(s, "h1")
        s.holds.mark_hold_closed(FO, at=T0)
        assert s.holds.hold(FO).status == "closed" and s.holds.active_holds() == []


def test_a_lost_hold_counts_once_and_only_within_the_window(tmp_path):
    with Store.open(tmp_path / "state.db") as s:
        row = _held(s, "h1")
        assert s.holds.hold_losses_since(FO, T0 - timedelta(hours=1), lost_hold_id="h1") == 1  # not recorded yet
        s.holds.record_hold_loss(row, verdict="rehold", at=T0)
        s.holds.record_hold_loss(row, verdict="rehold", at=T0 + timedelta(minutes=5))  # a killed scan looked again
        assert s.holds.hold_losses_since(FO, T0 - timedelta(hours=1), lost_hold_id="h1") == 1
        row = _held(s, "h2")
        assert s.holds.hold_losses_since(FO, T0 - timedelta(hours=1), lost_hold_id="h2") == 2
        assert s.holds.hold_losses_since(FO, T0 + timedelta(minutes=1), lost_hold_id="h2") == 1  # h1 fell out
        assert [(r["order"], r["times"]) for r in s.holds.reheld()] == [("EXC-1-1", 1)]


def test_giving_up_a_fight_is_remembered_and_lifts_the_active_row(tmp_path):
    with Store.open(tmp_path / "state.db") as s:
        row = _held(s, "h1")
        assert s.holds.hold_fight_given_up(ORDER) is None
        s.holds.record_hold_loss(row, verdict="give_up", at=T0)
        assert s.holds.hold_fight_given_up(ORDER) == T0.isoformat()
        assert s.holds.hold(FO).status == "released_externally" and s.holds.reheld() == []

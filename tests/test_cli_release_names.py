"""`loopsync release` finds an order by name as Shopify does: case-insensitively, with or without `#`."""

from __future__ import annotations

import pytest

from loopsync.store import Store


@pytest.mark.parametrize("typed", ["exc-1086-1", "#exc-1086-1", "  Exc-1086-1 "])
def test_release_finds_the_order_whatever_the_case(cli, connected, probe, typed):
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert len(probe.our_holds("EXC-1086-1")) == 1

    result = cli(["release", typed, "--yes", "--db", str(connected)])

    assert result.code == 0, result.output
    assert "Released 1 loopsync hold(s) on EXC-1086-1." in result.err
    assert probe.our_holds("EXC-1086-1") == []
    with Store.open(connected) as store:
        assert store.orders.order_by_name(typed).name == "EXC-1086-1"
        assert store.orders.is_manually_released(store.orders.order_by_name(typed).order_id)


def test_a_name_that_only_shares_a_prefix_is_still_not_found(cli, connected, checks):
    checks.clean_error(cli(["release", "exc-1086", "--yes", "--db", str(connected)]), 2, "No order 'exc-1086'")

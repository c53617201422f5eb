"""How separate exchange orders are recognised: the name prefix *and* `exchange_tag` (either
one is enough); `config set KEY ''` turns an optional one off, `config unset KEY` restores the
default. And the README's setup steps can be followed literally."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def _held(cli, db, probe) -> list[str]:
    """Scan, then name the orders loopsync holds in the sandbox."""
    result = cli(["scan", "--db", str(db)])
    assert result.code in (0, 1), result.output  # 1: an order whose Loop return does not exist
    return sorted(o.name for o in probe.world.orders.values() if probe.our_holds(o.name))


def _settings(cli, db) -> dict:
    return json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)


def test_the_name_prefix_can_be_turned_off_and_the_tag_alone_then_decides(cli, connected, probe):
    db = str(connected)
    with probe.world.lock:
        probe.order("EXC-1092-1").tags.append("Loop-Exchange-Order")
    assert cli(["config", "set", "exchange_tag", "loop-exchange-order", "--db", db]).code == 0

    off = cli(["config", "set", "exchange_name_prefix", "", "--db", db])

    assert off.code == 0, off.output
    assert "exchange_name_prefix is off" in off.err
    assert _settings(cli, db)["exchange_name_prefix"] == ""
    # Only the tagged EXC order and the native exchange: the other EXC- orders are ordinary now.
    assert _held(cli, db, probe) == ["#1095", "EXC-1092-1"]


def test_the_tag_works_as_well_as_the_prefix_and_unset_restores_the_prefix(cli, connected, probe):
    db = str(connected)
    with probe.world.lock:
        probe.order("#1002").tags.append("exchange")  # an ordinary order, tagged as an exchange
        probe.order("#1002").line_items[0].variant_id = probe.variant("JKT-L-PRE")
    cli(["config", "set", "exchange_tag", "exchange", "--db", db])
    cli(["config", "set", "exchange_name_prefix", "", "--db", db])

    unset = cli(["config", "unset", "exchange_name_prefix", "--db", db])

    assert unset.code == 0 and "exchange_name_prefix = EXC- (default)" in unset.err
    assert _held(cli, db, probe) == ["#1002", "#1095", "EXC-1086-1", "EXC-1091-1", "EXC-1092-1"]


def test_the_native_exchange_tag_can_be_turned_off(cli, connected, probe):
    db = str(connected)
    assert cli(["config", "set", "native_exchange_tag", " ", "--db", db]).code == 0

    assert _held(cli, db, probe) == ["EXC-1086-1", "EXC-1091-1", "EXC-1092-1"]
    assert cli(["config", "unset", "native_exchange_tag", "--db", db]).code == 0
    assert _settings(cli, db)["native_exchange_tag"] == "Loop Exchange"


def test_a_required_setting_cannot_be_blanked(cli, db, checks):
    checks.clean_error(cli(["config", "set", "preorder_tag", "", "--db", str(db)]), 2, "cannot be empty")


def test_the_readme_connects_the_state_file_its_cron_line_scans():
    setup = README[README.index("## Using it on your store"):README.index("### Other commands")]
    connects = re.findall(r"^\s+(?:\S+=\S+ )*loopsync connect\b.*$", setup, flags=re.MULTILINE)
    crons = re.findall(r"^\s*\*/5 .*loopsync scan.*$", setup, flags=re.MULTILINE)
    [db] = {re.search(r"--db (\S+)", cron).group(1) for cron in crons}
    assert connects and all(f"--db {db}" in line for line in connects), connects
    # The guide connects through LOOPSYNC_DB rather than --db: the same file.
    assert re.search(rf"^export .*LOOPSYNC_DB={re.escape(db)}( |$)", setup, flags=re.MULTILINE)

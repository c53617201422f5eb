"""`loopsync config`: settings are validated, stored, and change what a scan does."""

from __future__ import annotations

import json

from loopsync.sandbox.world import World


def test_config_set_list_unset_round_trip(cli, db):
    assert cli(["config", "set", "note_label", "PreProduct", "--db", str(db)]).code == 0
    listed = json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)
    assert listed["note_label"] == "PreProduct"
    assert cli(["config", "unset", "note_label", "--db", str(db)]).code == 0
    assert json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)["note_label"] == "loopsync"


def test_bad_setting_values_are_refused_with_one_sentence(cli, db):
    for args in (["note_label", "[x]"], ["preorder_tag", "a,b"], ["lookback", "soon"], ["colour", "red"]):
        result = cli(["config", "set", *args, "--db", str(db)])
        assert result.code == 2, result.output
        assert "Traceback" not in result.output and result.err.count("\n") == 1


def test_note_label_and_tag_settings_shape_the_scan(connected, cli, sandbox):
    db = str(connected)
    cli(["config", "set", "note_label", "PreProduct", "--db", db])
    cli(["config", "set", "preorder_tag", "Preorder-Exchange", "--db", db])
    assert cli(["scan", "--db", db]).code == 0
    world: World = sandbox.world
    exc = world.order_by_name("EXC-1086-1")
    assert "Preorder-Exchange" in exc.tags and "pre-order" not in exc.tags
    notes = [n.content for r in world.loop_returns.values() for n in r.notes]
    assert "[PreProduct] This exchange item is on pre-order, estimated shipping: 15 March 2027." in notes


def test_status_of_a_missing_state_file_creates_nothing(cli, tmp_path):
    db = tmp_path / "typo.db"
    result = cli(["status", "--db", str(db), "--json"])
    assert result.code == 0, result.output
    assert json.loads(result.out)["connection"] is None
    assert not db.exists() and list(tmp_path.iterdir()) == []

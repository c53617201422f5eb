"""Text from outside stays one printable line of bounded length: shipping windows and labels
are checked when typed, and what Shopify sends (order names, metafield windows, selling plan
descriptions) is cleaned before it reaches a Loop note, a hold's reason notes or the terminal."""

from __future__ import annotations

import json
import unicodedata

import pytest

from loopsync import detect, text

ESCAPES = "\x1b[31mLate\x1b]0;owned\x07 January\x1b[2J\n2027\x07\x1b[0m\u202e"
LOOP_NOTE_MAX = 255
# GUESS (as in detect.py): Shopify's limit for a hold's reasonNotes is not documented; 255 is what we keep to.
REASON_NOTES_MAX = 255


def _printable(value: str) -> bool:
    return not any(unicodedata.category(c) == "Cc" or c == "\u202e" for c in value)


# -- input: one printable line, at most so long -----------------------------------------


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ("a\nb", "line break"),
        ("Late\tMarch", "control characters"),
        ("\x1b[31mMarch\x1b[0m", "control characters"),
        ("x" * 40_000, "40000 characters"),
        ("x" * (detect.WINDOW_MAX_LENGTH + 1), f"at most {detect.WINDOW_MAX_LENGTH} characters"),
    ],
    ids=["newline", "tab", "escape", "40000", "one-too-long"],
)
def test_preorders_add_refuses_a_window_that_is_not_one_short_printable_line(cli, db, checks, window, fragment):
    assert cli(["preorders", "add", "8", "--window", "Late March", "--db", str(db)]).code == 0
    result = cli(["preorders", "add", "7", "--window", window, "--db", str(db)])

    checks.clean_error(result, 2, fragment)
    listed = json.loads(cli(["preorders", "list", "--db", str(db), "--json"]).out)
    assert [o["variant_id"] for o in listed] == ["gid://shopify/ProductVariant/8"]


def test_preorders_add_takes_the_longest_window_and_it_fits_the_note_uncut(cli, db):
    window = "w" * detect.WINDOW_MAX_LENGTH

    assert cli(["preorders", "add", "7", "--window", window, "--db", str(db)]).code == 0
    assert cli(["preorders", "list", "--db", str(db)]).out == f"gid://shopify/ProductVariant/7\t{window}\n"
    note = detect.note_text("n" * detect.NOTE_LABEL_MAX_LENGTH, window)
    assert len(note) <= LOOP_NOTE_MAX and note.endswith(f"{window}.")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("note_label", "loop\x1b[2Jsync"),
        ("note_label", "loop\nsync"),
        ("preorder_tag", "pre\norder"),
        ("exchange_tag", "exc\x07"),
        ("native_exchange_tag", "Loop\tExchange"),
        ("exchange_name_prefix", "EXC\x1b[0m-"),
    ],
)
def test_config_set_refuses_labels_and_tags_that_are_not_one_printable_line(cli, db, checks, key, value):
    assert cli(["config", "set", "lookback", "3d", "--db", str(db)]).code == 0  # the state file exists
    before = json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)

    checks.clean_error(cli(["config", "set", key, value, "--db", str(db)]), 2, "one line of printable text")
    assert json.loads(cli(["config", "list", "--db", str(db), "--json"]).out) == before


# -- data from Shopify: cleaned before a note, a hold or the terminal -----------------------


def _set_window(world, sku: str, window: str) -> None:
    """Put ``window`` where Shopify gives loopsync the boots' window: the variant metafield."""
    with world.lock:
        variant = next(v for v in world.variants.values() if v.sku == sku)
        variant.metafields[("preorder", "shipping_window")].value = window


def _set_plan_description(world, sku: str, description: str) -> None:
    with world.lock:
        variant = next(v for v in world.variants.values() if v.sku == sku)
        variant.metafields.clear()
        for group in world.selling_plan_groups.values():
            if variant.id in group.variant_ids:
                for plan in group.plans:
                    plan.description = description


@pytest.mark.parametrize("where", ["metafield", "selling plan description"])
def test_escape_sequences_from_shopify_reach_no_note_hold_or_terminal(cli, connected, probe, where):
    if where == "metafield":
        _set_window(probe.world, "BOOT-10-PRE", ESCAPES)
    else:
        _set_plan_description(probe.world, "BOOT-10-PRE", ESCAPES)
    with probe.world.lock:
        probe.order("EXC-1091-1").name = "EXC-1091-1\x1b[2J\x1b]0;owned\x07"

    scanned = cli(["scan", "--db", str(connected), "--verbose"])
    status = cli(["status", "--db", str(connected)])
    released = cli(["release", "#1095", "--yes", "--db", str(connected)])

    assert scanned.code == 0, scanned.output
    for result in (scanned, status, released):
        assert "\x1b" not in result.output and "\x07" not in result.output, repr(result.output)
        assert _printable(result.output.replace("\n", ""))
    assert "EXC-1091-1" in scanned.out and "Late January 2027" in status.out
    boots = "[loopsync] This exchange item is on pre-order, estimated shipping: Late January 2027."
    released_note = "[loopsync] The pre-order item is ready: the hold was released."
    # #1095 was released by hand above, so its return also carries the release note.
    assert probe.notes("#1091") == [boots] and probe.notes("#1095") == [boots, released_note]
    [hold] = probe.our_holds("EXC-1091-1\x1b[2J\x1b]0;owned\x07")
    assert _printable(hold.reason_notes) and "Late January 2027." in hold.reason_notes


def test_a_40000_character_window_from_shopify_is_cut_for_the_note_and_the_hold(cli, connected, probe):
    _set_window(probe.world, "BOOT-10-PRE", "Late January 2027 " + "x" * 40_000)

    scanned = cli(["scan", "--db", str(connected), "--json"])

    assert scanned.code == 0, scanned.output
    for order, original in (("EXC-1091-1", "#1091"), ("#1095", "#1095")):
        [note] = probe.notes(original)
        [hold] = probe.our_holds(order)
        assert len(note) <= LOOP_NOTE_MAX and note.startswith("[loopsync] ") and note.endswith("….")
        assert len(hold.reason_notes) <= REASON_NOTES_MAX and "Late January 2027 xxx" in hold.reason_notes
    windows = [o["window"] for o in json.loads(scanned.out)["orders"] if o["window"]]
    assert windows and all(len(w) <= detect.WINDOW_MAX_LENGTH for w in windows)


# -- the helpers themselves ------------------------------------------------------------------


def test_one_line_drops_whole_escape_sequences_and_joins_lines():
    assert text.one_line(ESCAPES) == "Late January 2027"
    assert text.one_line("a\r\n\tb\u2028c\x00d\x9b31me") == "a b cde"
    assert text.one_line(None) == "" and text.one_line("Été 2027 ✈") == "Été 2027 ✈"


def test_clean_cuts_with_an_ellipsis():
    assert text.clean("abcdef", 4) == "abc…" and text.clean("abcd", 4) == "abcd"


def test_a_combined_window_of_many_items_is_cut_too():
    combined = detect.combined_window([f"window {i} " + "y" * 100 for i in range(5)])
    assert len(combined) == detect.WINDOW_MAX_LENGTH and combined.endswith("…")

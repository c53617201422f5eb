"""Text that came from outside (a person's input, Shopify, Loop) made safe to repeat.

A shipping window or an order name is repeated into a Loop note, a hold's reason
notes and the terminal. A line break there splits one record in two (``preorders
list``, the note), and an escape sequence is obeyed by the terminal that prints
it (it can recolour, retitle or clear the screen). So text from outside is
checked on the way in and cleaned on the way out. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

# Whole terminal escape sequences (CSI "ESC [ … final", OSC "ESC ] … BEL or ESC \",
# and two-character ones), so nothing of them is left to print as debris.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-character sequences
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the one-byte C1 form of CSI
)
# Bidirectional overrides and isolates reorder what a terminal shows
# ("Trojan Source"); they never belong in a window or an order name.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
ELLIPSIS = "…"


def _unwanted(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS


def one_line(text: str | None) -> str:
    """``text`` as one printable line: escape sequences and control characters removed,
    every run of whitespace (line breaks and tabs included) made a single space."""
    if not text:
        return ""
    without_sequences = _ESCAPE_SEQUENCE.sub("", text)
    # Whitespace controls (\n, \t, \r…) become spaces before the other controls go.
    spaced = " ".join(without_sequences.split())
    return "".join(c for c in spaced if not _unwanted(c))


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters; a longer text is cut and ends with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def clean(text: str | None, limit: int) -> str:
    """:func:`one_line`, then :func:`shorten`: what text from an API may become."""
    return shorten(one_line(text), limit)


def line_problem(text: str) -> str | None:
    """Why ``text`` is not one printable line (for input checks), or None if it is."""
    if any(c in "\n\r\u2028\u2029\x0b\x0c\x85" for c in text):
        return "it contains a line break"
    if any(_unwanted(c) for c in text):
        return "it contains control characters"
    return None

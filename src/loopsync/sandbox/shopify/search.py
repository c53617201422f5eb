"""Shopify's search syntax for the sandbox's ``orders(query:)``.

Grammar (https://shopify.dev/docs/api/usage/search-syntax)::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= unary (["AND"] unary)*          # AND is implied between terms
    unary   := ("NOT" | "-") unary | "(" or_expr ")" | term
    term    := field ":" [ "<" | "<=" | ">" | ">=" ] value | value
    value   := bare word | "double quoted" | 'single quoted'

A parsed query is evaluated against an ``Order``. A term on an unknown field is
dropped (it neither matches nor fails), as public reports say Shopify does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loopsync.sandbox.shopify import pagination
from loopsync.sandbox.world import Order, World, gid_number


class SearchSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    field: str | None  # None: free text
    comparator: str  # ":" "<" "<=" ">" ">="
    value: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Not | And | Or

# --- tokenizer ---------------------------------------------------------------

_LPAREN, _RPAREN, _NEG, _WORD = "(", ")", "-", "word"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str = ""  # the word with quotes removed
    quoted: bool = False  # any part of the word was quoted
    colon: int = -1  # index in ``text`` of the first unquoted ':'


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token(_LPAREN))
            i += 1
        elif ch == ")":
            tokens.append(_Token(_RPAREN))
            i += 1
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace():
            tokens.append(_Token(_NEG))
            i += 1
        else:
            text: list[str] = []
            quoted = False
            colon = -1
            while i < n and not query[i].isspace() and query[i] not in "()":
                ch = query[i]
                if ch in "\"'":
                    end = i + 1
                    part: list[str] = []
                    while end < n and query[end] != ch:
                        if query[end] == "\\" and end + 1 < n:
                            end += 1
                        part.append(query[end])
                        end += 1
                    if end >= n:
                        raise SearchSyntaxError(f"unterminated quote in {query!r}")
                    text.extend(part)
                    quoted = True
                    i = end + 1
                else:
                    if ch == ":" and colon < 0:
                        colon = len(text)
                    text.append(ch)
                    i += 1
            tokens.append(_Token(_WORD, "".join(text), quoted, colon))
    return tokens


# --- parser ------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    @staticmethod
    def is_op(token: _Token | None, word: str) -> bool:
        return token is not None and token.kind == _WORD and not token.quoted and token.text == word

    def parse(self) -> Node | None:
        node = self.or_expr()
        while self.peek() is not None:
            # GUESS: a stray ")" is skipped rather than rejected; Shopify's search is lenient.
            self.take()
            more = self.or_expr()
            if more is not None:
                node = more if node is None else And((node, more))
        return node

    def or_expr(self) -> Node | None:
        parts = [self.and_expr()]
        while self.is_op(self.peek(), "OR"):
            self.take()
            parts.append(self.and_expr())
        kept = tuple(p for p in parts if p is not None)
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else Or(kept)

    def and_expr(self) -> Node | None:
        parts: list[Node] = []
        while True:
            token = self.peek()
            if token is None or token.kind == _RPAREN or self.is_op(token, "OR"):
                break
            if self.is_op(token, "AND"):
                self.take()
                continue
            node = self.unary()
            if node is not None:
                parts.append(node)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node | None:
        token = self.take()
        if token.kind == _NEG or self.is_op(token, "NOT"):
            if self.peek() is None:
                return None
            child = self.unary()
            return None if child is None else Not(child)
        if token.kind == _LPAREN:
            node = self.or_expr()
            if self.peek() is not None and self.peek().kind == _RPAREN:
                self.take()
            # GUESS: a missing ")" at the end is tolerated.
            return node
        return _term(token)


def _term(token: _Token) -> Term:
    if token.colon < 0:
        return Term(None, ":", token.text)
    field = token.text[: token.colon].strip().lower()
    rest = token.text[token.colon + 1:]
    for comparator in ("<=", ">=", "<", ">"):
        if rest.startswith(comparator):
            return Term(field, comparator, rest[len(comparator):])
    return Term(field, ":", rest)


def parse(query: str | None) -> Node | None:
    """Parse a search query; None means "match everything"."""
    if not query or not query.strip():
        return None
    return _Parser(_tokenize(query)).parse()


# --- evaluation --------------------------------------------------------------


def _compare(actual: object, comparator: str, low: object, high: object) -> bool:
    """``low``/``high`` bound the value the user wrote: [low, high)."""
    if comparator == ":":
        return low <= actual < high  # type: ignore[operator]
    if comparator == "<":
        return actual < low  # type: ignore[operator]
    if comparator == "<=":
        return actual < high  # type: ignore[operator]
    if comparator == ">":
        return actual >= high  # type: ignore[operator]
    return actual >= low  # type: ignore[operator]


def parse_time(value: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The interval [start, end) a time value covers: a year, month, day, or one second."""
    value = value.strip()
    # GUESS: dates are read in UTC; Shopify reads them in the shop's time zone.
    if value.lower() == "now":
        return now, now + timedelta(seconds=1)
    try:
        if re.fullmatch(r"\d{4}", value):
            start = datetime(int(value), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if re.fullmatch(r"\d{4}-\d{2}", value):
            year, month = map(int, value.split("-"))
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
            return start, end
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            start = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC).replace(microsecond=0)
    return moment, moment + timedelta(seconds=1)


def order_return_status(order: Order) -> str:
    """OrderReturnStatus derived from the order's returns."""
    statuses = {r.status for r in order.returns}
    if not statuses:
        return "NO_RETURN"
    if "OPEN" in statuses:
        return "IN_PROGRESS"
    if "REQUESTED" in statuses:
        return "RETURN_REQUESTED"
    if "CLOSED" in statuses:
        return "RETURNED"
    # GUESS: only declined/cancelled returns read as no return.
    return "NO_RETURN"


def _match_text(actual: str, wanted: str) -> bool:
    # GUESS: exact case-insensitive match, with a trailing * as a prefix search.
    actual, wanted = actual.lower(), wanted.lower()
    if wanted.endswith("*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


def _time_term(attr: str) -> Callable[[Order, World, Term], bool | None]:
    def match(order: Order, world: World, term: Term) -> bool | None:
        bounds = parse_time(term.value, world.now())
        if bounds is None:
            return None  # GUESS: an unreadable date drops the term
        return _compare(getattr(order, attr).replace(microsecond=0), term.comparator, *bounds)

    return match


def _tag(order: Order, world: World, term: Term) -> bool:
    return any(_match_text(tag, term.value) for tag in order.tags)


def _name(order: Order, world: World, term: Term) -> bool:
    wanted = term.value
    return _match_text(order.name, wanted) or (
        not wanted.startswith("#") and _match_text(order.name, "#" + wanted)
    )


def _status(order: Order, world: World, term: Term) -> bool | None:
    value = term.value.lower()
    cancelled = order.cancelled_at is not None
    if value == "open":
        return not order.closed and not cancelled
    if value == "closed":
        return order.closed
    if value == "cancelled":
        return cancelled
    if value == "not_closed":
        return not order.closed
    return None


def _id(order: Order, world: World, term: Term) -> bool | None:
    raw = term.value.rsplit("/", 1)[-1]
    if not raw.isdigit():
        return None
    wanted = int(raw)
    return _compare(gid_number(order.id), term.comparator, wanted, wanted + 1)


def _return_status(order: Order, world: World, term: Term) -> bool:
    return order_return_status(order).lower() == term.value.lower()


def _source_name(order: Order, world: World, term: Term) -> bool:
    return _match_text(order.source_name or "", term.value)


def _free_text(order: Order, world: World, term: Term) -> bool:
    # GUESS: free text matches the order name or a tag (Shopify searches more fields).
    needle = term.value.lower().rstrip("*")
    return needle in order.name.lower() or any(needle in t.lower() for t in order.tags)


_FIELDS: dict[str, Callable[[Order, World, Term], bool | None]] = {
    "created_at": _time_term("created_at"),
    "processed_at": _time_term("created_at"),
    "updated_at": _time_term("updated_at"),
    "tag": _tag,
    "tag_not": lambda order, world, term: not _tag(order, world, term),
    "name": _name,
    "status": _status,
    "id": _id,
    "return_status": _return_status,
    "source_name": _source_name,
}


def evaluate(node: Node | None, order: Order, world: World) -> bool | None:
    """True/False, or None when every term involved was dropped."""
    if node is None:
        return None
    if isinstance(node, Term):
        if node.field is None:
            return _free_text(order, world, node)
        handler = _FIELDS.get(node.field)
        # GUESS: unknown fields are silently ignored, as public field notes report.
        return None if handler is None else handler(order, world, node)
    if isinstance(node, Not):
        inner = evaluate(node.child, order, world)
        return None if inner is None else not inner
    results = [r for r in (evaluate(c, order, world) for c in node.children) if r is not None]
    if not results:
        return None
    return all(results) if isinstance(node, And) else any(results)


#: How many (query, sort) answers a world keeps: a scan pages through one or two at a time.
CACHE_SIZE = 8


def sorted_orders(world: World, query: str | None, sort_name: str,
                  sort_value: Callable[[Order], Any] | None) -> tuple[list[Order], list[tuple]]:
    """The orders matching ``query``, ascending by (sort value, id), with their keys (pagination.sort).

    Paging through n orders asks this once a page: filtering and sorting every order each time
    made a 100,000-order scan quadratic. The answer is kept until ``world.revision`` moves (any
    order or return written, added, or changed in place) and reused while it stands, so it is
    always what filtering the world as it is now would give. Call under ``world.lock``.
    """
    tree = parse(query)
    key: tuple = (query, sort_name)
    if _mentions_now(tree):
        key += (world.now(),)  # "now" moves on its own, with no write to see
    revision = world.revision
    cached = world.search_cache.get(key)
    if cached is not None and cached[0] == revision:
        return cached[1], cached[2]
    ordered, keys = pagination.sort((o for o in world.orders.values() if evaluate(tree, o, world) is not False),
                                    sort_value)
    if key not in world.search_cache and len(world.search_cache) >= CACHE_SIZE:
        del world.search_cache[next(iter(world.search_cache))]
    world.search_cache[key] = (revision, ordered, keys)
    return ordered, keys


def _mentions_now(node: Node | None) -> bool:
    if node is None:
        return False
    if isinstance(node, Term):
        return node.value.strip().lower() == "now"
    if isinstance(node, Not):
        return _mentions_now(node.child)
    return any(_mentions_now(c) for c in node.children)

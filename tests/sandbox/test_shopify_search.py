"""Shopify search syntax (sandbox/shopify/search.py) and orders(query:, sortKey:, pagination) over 600 orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopsync.sandbox.builders import add_order, add_product
from loopsync.sandbox.shopify import search
from loopsync.sandbox.shopify.search import And, Not, Or, Term, parse

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # the conftest world's frozen clock


def test_parse_terms_comparators_and_quotes():
    assert parse("tag:foo") == Term("tag", ":", "foo")
    assert parse("updated_at:>='2026-01-01T00:00:00Z'") == Term("updated_at", ">=", "2026-01-01T00:00:00Z")
    assert parse('name:"#1001"') == Term("name", ":", "#1001")
    assert parse("created_at:<2026") == Term("created_at", "<", "2026")
    assert parse('tag:"Loop Exchange"') == Term("tag", ":", "Loop Exchange")


def test_parse_connectives_precedence_and_negation():
    a, b, c = Term("tag", ":", "a"), Term("tag", ":", "b"), Term("tag", ":", "c")
    assert parse("tag:a tag:b") == And((a, b))
    assert parse("tag:a AND tag:b") == And((a, b))
    assert parse("tag:a OR tag:b tag:c") == Or((a, And((b, c))))
    assert parse("(tag:a OR tag:b) tag:c") == And((Or((a, b)), c))
    assert parse("NOT tag:a") == Not(a)
    assert parse("-tag:a") == Not(a)
    assert parse("-(tag:a OR tag:b)") == Not(Or((a, b)))
    assert parse("") is None
    assert parse("   ") is None


def test_parse_rejects_unterminated_quote():
    with pytest.raises(search.SearchSyntaxError):
        parse('tag:"open')


def test_parse_time_granularity():
    day = search.parse_time("2026-02-03", NOW)
    assert day == (NOW.replace(month=2, day=3, hour=0), NOW.replace(month=2, day=4, hour=0))
    assert search.parse_time("2026-02-03T04:05:06Z", NOW)[0].isoformat() == "2026-02-03T04:05:06+00:00"
    assert search.parse_time("now", NOW)[0] == NOW
    assert search.parse_time("garbage", NOW) is None


# --- orders over the engine ---------------------------------------------------------

ORDERS_QUERY = """
query Page($q: String, $after: String, $sort: OrderSortKeys, $reverse: Boolean, $first: Int) {
  orders(first: $first, after: $after, query: $q, sortKey: $sort, reverse: $reverse) {
    edges { cursor node { name } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@pytest.fixture
def many(world):
    """600 orders, one a minute from NOW-600min; every 3rd tagged "hot", every 5th "cold";
    every 7th updated a day after creation; #1300.. closed, #1400.. cancelled (first 5 of each)."""
    variant = add_product(world, "Widget", [{"sku": "W"}]).variant_ids[0]
    start = NOW - timedelta(minutes=600)
    for n in range(600):
        created = start + timedelta(minutes=n)
        tags = (["hot"] if n % 3 == 0 else []) + (["cold"] if n % 5 == 0 else [])
        add_order(world, f"#{1000 + n}", [{"variant_id": variant}], tags=tags, created_at=created,
                  updated_at=created + timedelta(days=1) if n % 7 == 0 else None,
                  closed=300 <= n < 305, cancelled=400 <= n < 405)
    return start


def collect(gql, query=None, sort=None, reverse=False, first=250):
    names, after, pages = [], None, 0
    while True:
        data = gql.data(ORDERS_QUERY, {"q": query, "after": after, "sort": sort, "reverse": reverse,
                                       "first": first})["orders"]
        names += [e["node"]["name"] for e in data["edges"]]
        pages += 1
        assert data["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not data["pageInfo"]["hasNextPage"]:
            return names, pages
        after = data["pageInfo"]["endCursor"]
        assert after == data["edges"][-1]["cursor"]


def names(ns):
    return [f"#{1000 + n}" for n in ns]


def test_pagination_walks_all_600_orders_in_id_order(gql, many):
    got, pages = collect(gql, sort="ID")
    assert got == names(range(600))
    assert pages == 3


def test_created_at_filter_with_datetime_and_comparators(gql, many):
    cut = (many + timedelta(minutes=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    got, _ = collect(gql, f"created_at:>='{cut}'", sort="CREATED_AT")
    assert got == names(range(100, 600))
    got, _ = collect(gql, f"created_at:<'{cut}'", sort="CREATED_AT")
    assert got == names(range(100))
    got, _ = collect(gql, f"created_at:>'{cut}'", sort="CREATED_AT")
    assert got == names(range(101, 600))
    got, _ = collect(gql, f"created_at:<='{cut}'", sort="CREATED_AT")
    assert got == names(range(101))


def test_created_at_with_a_date_covers_the_whole_day(gql, many):
    day = NOW.strftime("%Y-%m-%d")
    assert collect(gql, f"created_at:{day}", sort="ID")[0] == names(range(600))
    before = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    assert collect(gql, f"created_at:{before}", sort="ID")[0] == []
    assert collect(gql, f"created_at:<={before}", sort="ID")[0] == []
    assert collect(gql, f"created_at:>{before}", sort="ID")[0] == names(range(600))


def test_updated_at_filter_sorted_by_updated_at(gql, many):
    since = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    got, _ = collect(gql, f"updated_at:>'{since}'", sort="UPDATED_AT")
    assert got == names(n for n in range(600) if n % 7 == 0)


def test_tag_and_tag_not_and_boolean_connectives(gql, many):
    assert collect(gql, "tag:hot", sort="ID")[0] == names(n for n in range(600) if n % 3 == 0)
    assert collect(gql, "tag:HOT", sort="ID")[0] == names(n for n in range(600) if n % 3 == 0)
    assert collect(gql, "tag_not:hot", sort="ID")[0] == names(n for n in range(600) if n % 3)
    assert collect(gql, "tag:hot AND tag:cold", sort="ID")[0] == names(n for n in range(600) if n % 15 == 0)
    assert collect(gql, "tag:hot tag:cold", sort="ID")[0] == names(n for n in range(600) if n % 15 == 0)
    assert collect(gql, "tag:hot OR tag:cold", sort="ID")[0] == names(
        n for n in range(600) if n % 3 == 0 or n % 5 == 0)
    assert collect(gql, "tag:hot -tag:cold", sort="ID")[0] == names(
        n for n in range(600) if n % 3 == 0 and n % 5)
    assert collect(gql, "NOT (tag:hot OR tag:cold)", sort="ID")[0] == names(
        n for n in range(600) if n % 3 and n % 5)


def test_name_status_and_id_filters(gql, world, many):
    assert collect(gql, "name:#1042")[0] == ["#1042"]
    assert collect(gql, "name:1042")[0] == ["#1042"]
    assert collect(gql, "status:closed", sort="ID")[0] == names(range(300, 305))
    assert collect(gql, "status:cancelled", sort="ID")[0] == names(range(400, 405))
    assert len(collect(gql, "status:open")[0]) == 590
    assert len(collect(gql, "status:not_closed")[0]) == 595
    ids = sorted(world.orders)
    pivot = ids[550].rsplit("/", 1)[1]
    assert collect(gql, f"id:>={pivot}", sort="ID")[0] == names(range(550, 600))
    assert collect(gql, f"id:<{pivot} id:>=" + ids[548].rsplit("/", 1)[1], sort="ID")[0] == names([548, 549])


def test_unknown_fields_are_ignored(gql, many):
    assert collect(gql, "tag:hot bogus_field:1", sort="ID")[0] == names(n for n in range(600) if n % 3 == 0)
    assert collect(gql, "-bogus_field:1", sort="ID")[0] == names(range(600))


def test_reverse_and_order_number_sort(gql, many):
    got, _ = collect(gql, "tag:cold", sort="ORDER_NUMBER", reverse=True, first=17)
    assert got == list(reversed(names(n for n in range(600) if n % 5 == 0)))


def test_cursor_stays_valid_when_orders_change_between_pages(gql, world, many):
    page = gql.data(ORDERS_QUERY, {"first": 10, "sort": "ID"})["orders"]
    after = page["pageInfo"]["endCursor"]
    # An order from the first page disappears; the next page still starts right after the cursor.
    del world.orders[sorted(world.orders, key=lambda i: int(i.rsplit("/", 1)[1]))[3]]
    nxt = gql.data(ORDERS_QUERY, {"first": 5, "after": after, "sort": "ID"})["orders"]
    assert [e["node"]["name"] for e in nxt["edges"]] == names(range(10, 15))


def test_last_and_before(gql, many):
    query = """query($before: String) { orders(last: 3, before: $before, sortKey: ID, query: "tag:cold") {
        nodes { name } pageInfo { hasNextPage hasPreviousPage startCursor } } }"""
    tail = gql.data(query)["orders"]
    assert [n["name"] for n in tail["nodes"]] == names([585, 590, 595])
    assert tail["pageInfo"]["hasPreviousPage"] is True
    prev = gql.data(query, {"before": tail["pageInfo"]["startCursor"]})["orders"]
    assert [n["name"] for n in prev["nodes"]] == names([570, 575, 580])
    assert prev["pageInfo"]["hasNextPage"] is True


def test_page_size_is_capped_at_250(gql, many):
    payload = gql("{ orders(first: 251) { nodes { id } } }")
    assert payload["data"] is None
    assert payload["errors"][0]["message"].startswith("first cannot exceed 250")
    payload = gql("{ orders(last: 300) { nodes { id } } }")
    assert payload["errors"][0]["message"].startswith("last cannot exceed 250")
    payload = gql("{ orders { nodes { id } } }")
    assert payload["errors"][0]["message"] == "you must provide one of first or last"


def test_garbage_cursor_is_an_error(gql, many):
    payload = gql('{ orders(first: 2, after: "not-a-cursor") { nodes { id } } }')
    assert "Invalid cursor" in payload["errors"][0]["message"]


def test_paging_filters_the_orders_once_not_once_a_page(gql, many, monkeypatch):
    # Filtering and sorting every order for every page made a 100,000-order scan quadratic.
    calls = []
    evaluate = search.evaluate
    monkeypatch.setattr(search, "evaluate", lambda *a: calls.append(1) or evaluate(*a))
    got, pages = collect(gql, "tag:hot", sort="UPDATED_AT", first=50)
    assert pages == 4 and len(got) == 200
    assert len(calls) == 600  # one pass over the store, not one per page


TAGS_ADD = """mutation($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) { userErrors { message } } }"""


def test_a_reused_search_sees_every_change_made_between_pages(gql, world, many):
    """Each page is what filtering the world as it is at that moment gives, whatever changed."""
    by_name = {o.name: o for o in world.orders.values()}

    def expected_after(cursor):
        bound = search.pagination.decode_cursor(cursor)
        keyed = sorted(((o.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"), int(o.id.rsplit("/", 1)[1])), o.name)
                       for o in world.orders.values() if any(t.lower() == "hot" for t in o.tags))
        return [name for k, name in keyed if k > bound][:50]

    changes = [
        lambda: gql.data(TAGS_ADD, {"id": by_name["#1001"].id, "tags": ["hot"]}),  # in place, over HTTP
        lambda: setattr(by_name["#1599"], "tags", []),  # a field assigned directly
        lambda: (by_name["#1598"].tags.clear(), world.changed()),  # in place, and said so
        lambda: add_order(world, "#2000", [{"variant_id": by_name["#1000"].line_items[0].variant_id}],
                          tags=["hot"], created_at=NOW),
        lambda: world.touch_order(by_name["#1003"].id),  # an order seen already comes round again
    ]
    page = gql.data(ORDERS_QUERY, {"q": "tag:hot", "sort": "UPDATED_AT", "first": 50})["orders"]
    for change in changes:
        change()
        after = page["pageInfo"]["endCursor"]
        page = gql.data(ORDERS_QUERY, {"q": "tag:hot", "sort": "UPDATED_AT", "first": 50, "after": after})["orders"]
        assert [e["node"]["name"] for e in page["edges"]] == expected_after(after)

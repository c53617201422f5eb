"""What every part of the store shares: the open file, its transactions, row reads and times.

Timestamps are ISO-8601 UTC strings (``2026-11-26T09:56:24.123456+00:00``), which sort as text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database

    from loopsync.store.core import Store


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: The shape of a decision or an order state: the store checks only that, so a new word in the
#: reconciler can never make a scan fail at the moment it is recorded.
WORD = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

#: "Leave this column as it is" for partial updates (``None`` clears a column).
UNSET: Any = _Unset()


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


def iso(at: datetime | str | None) -> str:
    if at is None:
        return utcnow()
    if isinstance(at, str):
        return at
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return at.astimezone(UTC).isoformat()


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Part:
    """One kind of record in an open :class:`~loopsync.store.core.Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def db(self) -> Database:
        return self._store.db

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def busy_timeout(self) -> float:
        return self._store.busy_timeout

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._store.transaction():
            yield

    def _one(self, sql: str, params: tuple | list = ()) -> dict[str, Any] | None:
        cursor = self.db.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def _all(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

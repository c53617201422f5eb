"""The local state file, by kind of record: see :mod:`loopsync.store.core`."""

from loopsync.store.config import Connection, Override
from loopsync.store.core import DEFAULT_BUSY_TIMEOUT, Store
from loopsync.store.holds import HoldRow
from loopsync.store.ledger import Action, Decision, Scan
from loopsync.store.lock import scan_lock
from loopsync.store.orders import NoteRow, OrderRow
from loopsync.store.schema import SCHEMA_VERSION, migrations

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "Action",
    "Connection",
    "Decision",
    "HoldRow",
    "NoteRow",
    "OrderRow",
    "Override",
    "Scan",
    "Store",
    "migrations",
    "scan_lock",
]

"""What the last full read of each variant said: the idle scan's cache (see ``reconcile.candidates``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from loopsync.models import VariantInfo
from loopsync.store.errors import sql_errors
from loopsync.store.part import Part, iso, parse_iso


@dataclass(frozen=True)
class VariantFacts:
    variant_id: str
    group_ids: tuple[str, ...]
    exists: bool
    preorder_plan_ids: tuple[str, ...]
    read_at: datetime


class Variants(Part):
    """One row per variant loopsync read in full, overwritten by each newer read."""

    @sql_errors
    def remember(self, infos: Iterable[VariantInfo], at: datetime) -> None:
        rows = [
            (info.id, json.dumps(list(info.group_ids)), int(info.exists),
             json.dumps([p.id for p in info.preorder_plans]), iso(at))
            for info in infos
        ]
        if not rows:
            return
        with self.transaction():
            self.db.conn.executemany(
                "INSERT INTO variant_facts (variant_id, group_ids, exists_, preorder_plan_ids, read_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(variant_id) DO UPDATE SET group_ids = excluded.group_ids, "
                "exists_ = excluded.exists_, preorder_plan_ids = excluded.preorder_plan_ids, read_at = excluded.read_at",
                rows,
            )

    @sql_errors
    def facts(self, variant_ids: Iterable[str]) -> dict[str, VariantFacts]:
        ids = list(dict.fromkeys(variant_ids))
        found: dict[str, VariantFacts] = {}
        # SQLite's default limit on bound parameters is 999 (older builds).
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for r in self._all(f"SELECT * FROM variant_facts WHERE variant_id IN ({marks})", chunk):
                found[r["variant_id"]] = VariantFacts(
                    variant_id=r["variant_id"],
                    group_ids=tuple(json.loads(r["group_ids"])),
                    exists=bool(r["exists_"]),
                    preorder_plan_ids=tuple(json.loads(r["preorder_plan_ids"])),
                    read_at=parse_iso(r["read_at"]),
                )
        return found

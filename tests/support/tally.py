"""The reliability numbers for the issue note, counted by the harness and printed once.

Under pytest-xdist each worker counts its own tests; the top conftest ships each worker's
counts to the controller when the worker finishes and prints the sum, so the summary
line is the same whether the suite ran in one process or in several.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    runs: int = 0  # scan processes/invocations
    kills: int = 0  # scans that died by SIGKILL
    kill_points: set[str] = field(default_factory=set)  # failpoint:occurrence reached
    random_kills: int = 0
    faults: Counter = field(default_factory=Counter)
    duplicates: int = 0
    missed_holds: int = 0
    converged_cases: int = 0

    _COUNTS = ("runs", "kills", "random_kills", "duplicates", "missed_holds", "converged_cases")

    def as_dict(self) -> dict:
        """Plain lists and dicts: what execnet can carry from a worker to the controller."""
        doc = {name: getattr(self, name) for name in self._COUNTS}
        doc["kill_points"] = sorted(self.kill_points)
        doc["faults"] = dict(self.faults)
        return doc

    def merge(self, doc: dict) -> None:
        for name in self._COUNTS:
            setattr(self, name, getattr(self, name) + doc[name])
        self.kill_points.update(doc["kill_points"])
        self.faults.update(doc["faults"])

    def summary(self) -> str | None:
        if not self.runs:
            return None
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items()) if k != "requests") or "none"
        return (
            f"reliability: {self.runs} scan runs, {self.kills} SIGKILLs ({len(self.kill_points)} distinct kill "
            f"points, {self.random_kills} at random moments), {self.converged_cases} end states checked, "
            f"faults injected: {faults}; duplicates: {self.duplicates}, missed holds: {self.missed_holds}"
        )


TALLY = Tally()

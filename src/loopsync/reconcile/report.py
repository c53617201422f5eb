"""What a scan or a manual release reports: the actions taken, per order, per scan."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from datetime import datetime

from loopsync import detect, guard
from loopsync.errors import LoopsyncError
from loopsync.exit_codes import ExitCode


@dataclass
class Action:
    kind: str  # hold | tag | note | release
    target: str
    detail: str
    status: str = "done"  # done | planned | failed | unknown


@dataclass
class OrderOutcome:
    order_id: str
    order_name: str
    kind: str | None = None  # separate | native | None
    decision: str = "ignored"
    reason: str = ""
    window: str | None = None
    actions: list[Action] = field(default_factory=list)
    pending: str | None = None  # why this order needs another pass, next scan
    # The note waits for a Loop return that does not exist yet: looked for again on a
    # back-off schedule (detect.note_retry), not every scan.
    note_wait: detect.NoteRetry | None = None
    waiting: str | None = None  # that wait, in a sentence
    # Pending, but an earlier scan already said so: listed by `status`, not news (exit 0).
    pending_told: bool = False
    # The hold ids this pass released (or, in a dry run, would): what proves, with the ledger,
    # that the release note cannot be on the return yet (effects.Executor.release_note_may_exist).
    released_holds: set[str] = field(default_factory=set)

    @property
    def attention(self) -> str | None:
        """What a person should hear about this order; a scan with any exits 1.

        A note waiting for its Loop return is news twice: when it starts, and when
        loopsync gives up reporting it. In between it is only shown by ``status``.
        A fight over a hold loopsync gave up is news once, when it gives up.
        """
        if self.pending:
            return None if self.pending_told else self.pending
        if self.note_wait is not None and self.note_wait.news:
            return self.waiting
        return None


@dataclass
class ScanReport:
    scan_id: int | None
    since: datetime
    dry_run: bool
    orders_seen: int = 0
    exchanges_seen: int = 0
    outcomes: list[OrderOutcome] = field(default_factory=list)
    new_cursor: datetime | None = None
    interrupted: str | None = None  # the signal that stopped the scan early (SIGINT, SIGTERM)
    # Orders an earlier scan already left unheld (and said so): not new, only listed in `status`.
    known_unheld: frozenset[str] = frozenset()

    def count(self, kind: str, status: str = "done") -> int:
        return sum(1 for o in self.outcomes for a in o.actions if a.kind == kind and a.status == status)

    @property
    def reheld(self) -> int:
        """Holds put back after another app or a person released them outside loopsync."""
        return sum(
            1 for o in self.outcomes for a in o.actions if a.kind == "hold" and a.status == "done" and a.detail == guard.REHELD
        )

    @property
    def pending(self) -> list[OrderOutcome]:
        """Orders that need attention (see ``OrderOutcome.attention``)."""
        return [o for o in self.outcomes if o.attention]

    @property
    def waiting(self) -> list[OrderOutcome]:
        """Orders whose note waits for its Loop return, news or not."""
        return [o for o in self.outcomes if o.note_wait is not None]

    @property
    def left_unheld(self) -> list[OrderOutcome]:
        """Pre-order exchanges this scan was first to leave unheld because Loop is disconnected."""
        return [o for o in self.outcomes if o.decision == "disconnected_skip" and o.order_id not in self.known_unheld]


class ScanObserver:
    """What a scan tells whoever watches it (a progress bar, a JSON log), while it runs.

    The reconciler calls these and renders nothing itself; this base class ignores them all.
    """

    def order_read(self, orders_seen: int) -> None:
        """One more order summary read from Shopify (``orders_seen`` so far)."""

    def reconciling(self, total: int) -> None:
        """The orders to reconcile are known: ``total`` of them."""

    def reconciled(self, outcome: OrderOutcome, scan_id: int | None) -> None:
        """One order is done (its actions, pending reason and all)."""


class ScanInterrupted(LoopsyncError):
    """SIGINT or SIGTERM stopped the scan; ``report`` holds what it got done."""

    def __init__(self, report: ScanReport, signum: int) -> None:
        super().__init__("The scan was interrupted; the next scan finishes the rest.")
        self.report = report
        self.signum = signum
        # The shell's convention, 128 + the signal, so `$?` tells Ctrl-C from a service stop.
        self.exit_code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED

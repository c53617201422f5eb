"""Apply intents: ledger intent → API call → ledger result, with the failpoints between.

Every side effect is written to the ledger as an *intent* before it is sent and as
a *result* after, so a crash at any point leaves a record ``recovery`` settles
from what Shopify shows next pass. The failpoints (``hold.before``, ``hold.intent``,
``hold.sent``, ``hold.recorded`` and the same for tag, note and release) are the
kill points the crash matrix traces: their names and places are a contract.

``Executor`` acts and records; ``DryRun`` has the same methods and only lists the
planned actions (it still makes the reads that tell what *would* happen).

Why one module of about 510 lines: the two classes must keep the same methods and the
failpoints their order, and that is checked best with both in view; each method is one
side effect's begin → call → finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from loopsync import detect, failpoints, guard
from loopsync.errors import ApiError, OutcomeUnknownError
from loopsync.loop import LoopClient
from loopsync.models import HOLD_HANDLE, Order
from loopsync.reconcile import ledger, recovery, returns
from loopsync.reconcile.plan import (
    AddTag,
    ClearReleaseNote,
    Intent,
    KeepHold,
    LedgerView,
    MarkHoldClosed,
    MarkManualRelease,
    PlaceHold,
    PostNote,
    RecordHoldLoss,
    ReleaseHold,
    SettleRelease,
    held_by_us,
    waiting_text,
)
from loopsync.reconcile.report import Action, OrderOutcome
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient
from loopsync.store import Store

# Side effects that need Loop connected: releases go on after a disconnect.
_NEEDS_LOOP = frozenset({"hold", "tag", "note"})

# Decisions after which an order needs no "on pre-order" note: its wait for the Loop return ends.
_NO_NOTE_NEEDED = frozenset(
    {
        "not_exchange",
        "no_preorder_items",
        "manual_release_respected",
        "closed",
        "released",
        "released_manually",
        "already_shipped",
    }
)


class LoopDisconnected(Exception):
    """`disconnect` ran while this scan was under way: start no new hold, tag or note."""


def _errors(user_errors) -> str:
    return "; ".join(f"{e.code or 'ERROR'}: {e.message}" for e in user_errors)


class Executor:
    dry_run = False

    def __init__(
        self,
        store: Store,
        shopify: ShopifyClient,
        loop: LoopClient | None,
        options: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.shopify = shopify
        # None once disconnected: no new holds, tags or notes; releases go on.
        self.loop = loop
        self.returns = returns.ReturnFinder(loop) if loop is not None else None
        self.options = options
        self.clock = clock
        self.scan_id: int | None = None
        # Raises StopRequested once a signal asked the scan to stop; called at safe points only.
        self.stop: Callable[[], None] = lambda: None

    # -- reads the planner needs ------------------------------------------------------

    def ledger(self, order_id: str) -> LedgerView:
        return ledger.read(self.store, order_id, losses_since=self.losses_since())

    def ledger_after(self, order_id: str, released: set[str]) -> LedgerView:
        """The ledger once this pass's releases are written down (they are, by now)."""
        return ledger.read(self.store, order_id, losses_since=self.losses_since())

    def losses_since(self) -> datetime:
        return guard.window_start(self.clock(), self.options.rehold_window)

    def overrides(self) -> dict[str, str]:
        return ledger.overrides(self.store)

    # -- the scan's own records ---------------------------------------------------------

    def scan_started(self, since: datetime) -> int | None:
        if self.returns is not None:
            self.returns.reset()
        self.scan_id = self.store.ledger.scan_started(since=since)
        return self.scan_id

    def scan_finished(self, **fields) -> None:
        if self.scan_id is not None:
            self.store.ledger.scan_finished(self.scan_id, **fields)

    def forget_order(self, order_id: str) -> None:
        self.store.orders.forget_order(order_id, reason="order no longer exists in Shopify")

    def settle_interrupted(self, order: Order) -> None:
        recovery.settle_interrupted(self.store, order, self.clock())

    # -- intents ------------------------------------------------------------------------

    def apply(self, order: Order, kind: str | None, intents: list[Intent], outcome: OrderOutcome) -> None:
        for intent in intents:
            match intent:
                case ReleaseHold():
                    self.release(order, intent, outcome)
                case SettleRelease():
                    self.settle_release(order, intent, outcome)
                case MarkHoldClosed():
                    self.store.holds.mark_hold_closed(intent.fulfillment_order_id, at=self.clock())
                case RecordHoldLoss():
                    self.record_hold_loss(intent)
                case KeepHold():
                    self.remember_hold(order, intent.fulfillment_order_id, intent.hold_id, intent)
                case PlaceHold():
                    self.place_hold(order, intent, outcome)
                case AddTag():
                    self.add_tag(order, intent.tag, outcome)
                case PostNote(kind="release"):
                    self.post_note(order, intent.return_id, intent.content, outcome, release=True)
                case PostNote():
                    self.pre_order_note(order, kind, intent, outcome)
                case ClearReleaseNote():
                    self.store.orders.clear_release_note_due(order.id)
                case MarkManualRelease():
                    self.store.orders.mark_manual_release(order.id, name=order.name)
                    self.store.orders.clear_note_wait(order.id)  # released: the "on pre-order" note is moot

    def send(self, kind: str, order_id: str, target: str, key: str, payload: dict, call, *, refused: str = "unknown"):
        """Write the intent, make the call, and return (action id, its answer).

        A call that may or may not have taken effect leaves the action ``unknown``
        for the next pass to verify; ``refused`` is the status of any other API
        failure: ``unknown`` for Shopify's mutations (a retried request may have
        landed), ``failed`` where the API said no.
        """
        # A stop asked for by a signal takes effect here, between two calls, never within one.
        self.stop()
        if kind in _NEEDS_LOOP and self.loop is not None:
            self.check_still_connected()
        failpoints.reached(f"{kind}.before")
        action_id = self.store.ledger.begin_action(kind, order_id, target, key, payload, scan_id=self.scan_id)
        failpoints.reached(f"{kind}.intent")
        try:
            answer = call()
        except OutcomeUnknownError:
            self.store.ledger.finish_action(action_id, "unknown", {"error": "outcome unknown"})
            raise
        except ApiError:
            self.store.ledger.finish_action(action_id, refused, {"error": "request failed"})
            raise
        failpoints.reached(f"{kind}.sent")
        return action_id, answer

    def check_still_connected(self) -> None:
        """`disconnect` may have run since this scan read the connection: one read of the
        state file before each hold, tag and note means nothing new is started after it."""
        conn = self.store.config.connection()
        if conn is None or not conn.loop_connected:
            self.loop = None
            raise LoopDisconnected()

    def done(self, kind: str, action_id: int, result: dict) -> None:
        self.store.ledger.finish_action(action_id, "done", result)
        failpoints.reached(f"{kind}.recorded")

    def failed(self, action_id: int, message: str) -> None:
        self.store.ledger.finish_action(action_id, "failed", {"user_errors": message})

    # -- holds --------------------------------------------------------------------------

    def place_hold(self, order: Order, intent: PlaceHold, outcome: OrderOutcome) -> None:
        fo_id = intent.fulfillment_order_id
        action_id, result = self.send(
            "hold",
            order.id,
            fo_id,
            f"hold:{fo_id}",
            # "reheld" tells `history` a hold put back from one placed the first time.
            {"line_items": list(intent.line_items), "notes": intent.notes, **({"reheld": True} if intent.reheld else {})},
            partial(
                self.shopify.hold,
                fo_id,
                handle=HOLD_HANDLE,
                reason_notes=intent.notes,
                line_items=list(intent.line_items) or None,
            ),
        )
        if result.hold is not None:
            held_fo = result.fulfillment_order_id or fo_id
            self.done("hold", action_id, {"hold_id": result.hold.id, "fo": held_fo})
            self.remember_hold(order, held_fo, result.hold.id, intent)
            outcome.actions.append(Action("hold", held_fo, intent.detail))
        elif result.duplicate:
            # Our hold is there (most often this very request's first try, whose
            # answer was lost): read it back rather than trust either side's memory,
            # and report it as what it is, a hold this scan made sure of.
            found = self.find_our_hold(order, fo_id)
            if found is None:
                self.store.ledger.finish_action(action_id, "unknown", {"duplicate": True, "hold_id": None})
                outcome.pending = f"Shopify says loopsync's hold is on {fo_id}, but it could not be read back"
                return
            held_fo, hold_id = found
            self.done("hold", action_id, {"hold_id": hold_id, "fo": held_fo, "duplicate": True})
            self.remember_hold(order, held_fo, hold_id, intent)
            outcome.actions.append(Action("hold", held_fo, intent.detail))
        else:
            message = _errors(result.user_errors)
            self.failed(action_id, message)
            outcome.actions.append(Action("hold", fo_id, message, "failed"))
            outcome.pending = f"Shopify refused the hold on {fo_id}: {message}"

    def find_our_hold(self, order: Order, fo_id: str) -> tuple[str, str] | None:
        """(fulfillment order, hold id) of our hold placed on ``fo_id``, as Shopify shows it now.

        A hold on some lines splits the fulfillment order. GUESS: the held lines keep
        its id, as ``fulfillmentOrderSplit`` documents for the original; should Shopify
        have moved them instead, our hold is on a fulfillment order this order did not
        have before, and that is where it is read back from.
        """
        fresh = self.shopify.fetch_orders([order.id]).get(order.id)
        fos = fresh.fulfillment_orders if fresh else ()
        known = {f.id for f in order.fulfillment_orders}
        for fo in sorted(fos, key=lambda f: (f.id != fo_id, f.id in known)):
            if fo.our_hold is not None and (fo.id == fo_id or fo.id not in known):
                return fo.id, fo.our_hold.id
        return None

    def remember_hold(self, order: Order, fo_id: str, hold_id: str, intent: KeepHold | PlaceHold) -> None:
        self.store.holds.upsert_hold(
            fulfillment_order_id=fo_id,
            order_id=order.id,
            order_name=order.name,
            hold_id=hold_id,
            handle=HOLD_HANDLE,
            window=intent.window,
            variant_ids=list(intent.variant_ids),
        )

    def release(self, order: Order, intent: ReleaseHold, outcome: OrderOutcome) -> None:
        fo_id, hold_id = intent.fulfillment_order_id, intent.hold_id
        action_id, errors = self.send(
            "release", order.id, fo_id, f"release:{hold_id}", {"hold_id": hold_id, "by": intent.by, "why": intent.why},
            lambda: self.shopify.release_hold(fo_id, [hold_id]),
        )
        if errors:
            message = _errors(errors)
            self.failed(action_id, message)
            outcome.actions.append(Action("release", fo_id, message, "failed"))
            outcome.pending = f"Shopify refused to release the hold on {fo_id}: {message}"
            return
        self.done("release", action_id, {"hold_id": hold_id})
        outcome.released_holds.add(hold_id)
        self.store.holds.mark_hold_released(fo_id, by=intent.by, at=self.clock())
        outcome.actions.append(Action("release", fo_id, intent.why))
        if outcome.decision in ("ignored", "no_preorder_items"):
            outcome.decision, outcome.reason = "released", intent.why

    def settle_release(self, order: Order, intent: SettleRelease, outcome: OrderOutcome) -> None:
        fo_id = intent.fulfillment_order_id
        self.store.holds.mark_hold_released(fo_id, by=intent.by, at=self.clock())
        if intent.by == "external":
            self.store.orders.mark_manual_release(order.id)
            outcome.actions.append(Action("release", fo_id, "hold was released outside loopsync", "observed"))

    def record_hold_loss(self, intent: RecordHoldLoss) -> None:
        row = self.store.holds.hold(intent.fulfillment_order_id)
        assert row is not None  # the planner saw it in the ledger this pass
        self.store.holds.record_hold_loss(row, verdict=intent.verdict, at=self.clock())

    # -- tag and notes ----------------------------------------------------------------

    def add_tag(self, order: Order, tag: str, outcome: OrderOutcome) -> None:
        action_id, errors = self.send(
            "tag", order.id, tag, f"tag:{order.id}:{tag}", {"tag": tag}, lambda: self.shopify.add_tags(order.id, [tag])
        )
        if errors:
            message = "; ".join(e.message for e in errors)
            self.failed(action_id, message)
            outcome.pending = f"Shopify refused the tag: {message}"
            return
        self.done("tag", action_id, {"tag": tag})
        outcome.actions.append(Action("tag", order.id, f"added tag '{tag}'"))

    def note_may_exist(self, order: Order, return_id, content: str) -> bool:
        """Whether anyone running loopsync can have posted ``content`` on the return already.

        Reading the notes costs a Loop request per return, so it is read only where a
        note can be there: this state file began posting it (whatever came of that:
        a crash or a lost answer leaves the outcome unknown), or the order, as read at
        the start of this pass, carries our hold or tag: then an earlier run, perhaps
        with another state file, acted on it and may have posted the note. An order
        neither we nor another loopsync ever touched has none of our notes.
        """
        if self.store.ledger.last_action_for_key(f"note:{return_id}:{content}") is not None:
            return True
        tag = self.options.preorder_tag.casefold()
        return held_by_us(order) or any(t.casefold() == tag for t in order.tags)

    def release_note_may_exist(self, order: Order, return_id, content: str, outcome: OrderOutcome) -> bool:
        """Whether the release note ``content`` can be on the return already.

        The order is held, so ``note_may_exist`` always says yes, and a wave of releases would
        pay two Loop requests each (the notes list, then the note). The ledger proves it cannot
        be there when all of these hold:

        - this state file never began posting it (a crash or a lost answer leaves an action);
        - when this state file posted the pre-order note on this return, no release note was
          there (the list it read had none, or nothing of loopsync's had touched the order): that
          note's action says so (``release_note_absent``);
        - every hold this pass released was placed by this state file before that note. Hold ids
          are never reused, so each stood from then until this pass released it, and a loopsync
          (any state file, any process) posts the release note only once it has lifted the last
          of our holds on the order.

        GUESS: Loop makes one exchange order per return, so no other order's release brings the
        same return a release note. GUESS: releasing a hold that is no longer there is refused
        (userErrors), so a release that succeeded found the hold in place.
        """
        if not outcome.released_holds:
            return True
        if self.store.ledger.last_action_for_key(f"note:{return_id}:{content}") is not None:
            return True
        actions = self.store.ledger.actions(order_id=order.id)
        proof = next((a for a in actions if a.kind == "note" and a.status == "done" and a.target == str(return_id)
                      and isinstance(a.result, dict) and a.result.get("release_note_absent")), None)
        if proof is None:
            return True
        placed = {a.result.get("hold_id") for a in actions
                  if a.kind == "hold" and a.status == "done" and a.id < proof.id and isinstance(a.result, dict)}
        return not outcome.released_holds <= placed

    def notes_to_read(self, order: Order, return_id, content: str, outcome: OrderOutcome, *, release: bool) -> bool:
        if release:
            return self.release_note_may_exist(order, return_id, content, outcome)
        return self.note_may_exist(order, return_id, content)

    def return_for(self, order: Order, kind: str | None) -> int | str | None:
        """The Loop return the order's note goes on: the one recorded, else the one Loop has (or None)."""
        assert self.loop is not None and kind is not None
        assert self.returns is not None
        return self.store.orders.return_for_order(order.id) or self.returns.find(
            order, kind, self.options.exchange_name_prefix, self.clock()
        )

    def pre_order_note(self, order: Order, kind: str | None, intent: PostNote, outcome: OrderOutcome) -> None:
        return_id = self.return_for(order, kind)
        if return_id is None:
            self.wait_for_return(order, intent, outcome)
            return
        self.store.orders.set_order_return(order.id, return_id)
        self.store.orders.clear_note_wait(order.id)
        self.post_note(order, return_id, intent.content, outcome)

    def wait_for_return(self, order: Order, intent: PostNote, outcome: OrderOutcome) -> None:
        """No Loop return yet: the hold stays, and the note is looked for again later, less and less often."""
        wait = intent.wait
        assert wait is not None
        outcome.note_wait = wait
        outcome.waiting = waiting_text(wait)
        self.store.orders.set_note_wait(
            order.id,
            attempts=wait.attempts,
            first_missed_at=wait.first_missed_at,
            next_retry_at=wait.next_retry_at,
            gave_up_at=wait.gave_up_at,
        )

    def post_note(self, order: Order, return_id, content: str, outcome: OrderOutcome, *, release: bool = False
                  ) -> None:
        """Post ``content`` on the return once: not if the ledger or Loop's own list already has it."""
        assert self.loop is not None
        if self.store.notes.note_recorded(return_id, content):
            return
        listed = None
        if self.notes_to_read(order, return_id, content, outcome, release=release):
            listed = {n.content for n in self.loop.notes(return_id)}
            if content in listed:
                self.store.notes.record_note(return_id, content, order_id=order.id)
                return
        # Loop's note is not idempotent: a failure Loop reports is "failed", one whose
        # outcome is unknown is verified from the notes list next pass, never resent blindly.
        loop = self.loop
        action_id, _ = self.send(
            "note", order.id, str(return_id), f"note:{return_id}:{content}", {"content": content},
            lambda: loop.create_note(return_id, content),
            refused="failed",
        )
        result: dict = {"return_id": return_id}
        if not release and (listed is None or detect.release_note_text(self.options.note_label) not in listed):
            # The list just read has no release note, or it was not read because nothing of
            # loopsync's had touched the order: release_note_may_exist builds on this.
            result["release_note_absent"] = True
        self.done("note", action_id, result)
        self.store.notes.record_note(return_id, content, order_id=order.id)
        outcome.actions.append(Action("note", str(return_id), content))

    # -- record -----------------------------------------------------------------------

    def record(self, order: Order, outcome: OrderOutcome) -> None:
        if outcome.kind is None and not outcome.actions:
            return
        row = self.store.orders.record_order_outcome(
            order_id=order.id,
            name=order.name,
            kind=outcome.kind,
            state=outcome.decision,
            window=outcome.window,
            pending_reason=outcome.pending,
        )
        if row.note_next_retry_at is not None and outcome.note_wait is None and outcome.decision in _NO_NOTE_NEEDED:
            self.store.orders.clear_note_wait(order.id)
        self.record_decision(order, outcome.decision, outcome.pending or outcome.reason, scan_id=self.scan_id)

    def record_decision(self, order: Order, decision: str, reason: str, *, scan_id: int | None) -> None:
        self.store.ledger.record_decision(
            scan_id=scan_id, order_id=order.id, order_name=order.name, decision=decision, reason=reason
        )


class DryRun(Executor):
    """The plan, listed: nothing is sent to Shopify or Loop's write endpoints, nothing recorded."""

    dry_run = True

    def ledger_after(self, order_id: str, released: set[str]) -> LedgerView:
        # Nothing was written down: the release note is owed exactly when this pass
        # would release something.
        return replace(
            ledger.read(self.store, order_id, losses_since=self.losses_since()), release_note_due=bool(released)
        )

    def scan_started(self, since: datetime) -> int | None:
        if self.returns is not None:
            self.returns.reset()
        return None

    def forget_order(self, order_id: str) -> None:
        pass

    def settle_interrupted(self, order: Order) -> None:
        pass

    def apply(self, order: Order, kind: str | None, intents: list[Intent], outcome: OrderOutcome) -> None:
        for intent in intents:
            match intent:
                case ReleaseHold():
                    outcome.released_holds.add(intent.hold_id)
                    outcome.actions.append(
                        Action("release", intent.fulfillment_order_id, f"would release ({intent.why})", "planned")
                    )
                case PlaceHold():
                    outcome.actions.append(
                        Action("hold", intent.fulfillment_order_id, f"would hold {intent.detail}", "planned")
                    )
                case AddTag():
                    outcome.actions.append(Action("tag", order.id, f"would add tag '{intent.tag}'", "planned"))
                case PostNote(kind="release"):
                    self.post_note(order, intent.return_id, intent.content, outcome, release=True)
                case PostNote():
                    self.pre_order_note(order, kind, intent, outcome)

    def pre_order_note(self, order: Order, kind: str | None, intent: PostNote, outcome: OrderOutcome) -> None:
        return_id = self.return_for(order, kind)
        if return_id is None:
            assert intent.wait is not None
            outcome.note_wait = intent.wait
            outcome.waiting = waiting_text(intent.wait)
            return
        self.post_note(order, return_id, intent.content, outcome)

    def post_note(self, order: Order, return_id, content: str, outcome: OrderOutcome, *, release: bool = False
                  ) -> None:
        assert self.loop is not None
        # Loop's list, not the ledger, says whether the note is there: what a real run would find,
        # read where a real run would read it.
        if not (self.notes_to_read(order, return_id, content, outcome, release=release)
                and any(n.content == content for n in self.loop.notes(return_id))):
            outcome.actions.append(Action("note", str(return_id), f"would post: {content}", "planned"))

    def record(self, order: Order, outcome: OrderOutcome) -> None:
        pass

    def record_decision(self, order: Order, decision: str, reason: str, *, scan_id: int | None) -> None:
        pass

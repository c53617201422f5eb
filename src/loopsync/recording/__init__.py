"""Record loopsync's HTTP traffic as scrubbed vcrpy cassettes, and replay them offline.

``recording(path, "record")`` wraps a run (``loopsync scan --record PATH``): every
Shopify, OAuth and Loop exchange is written to ``path`` as readable YAML, with
credentials replaced by ``[scrubbed]`` before anything reaches the disk.
``recording(path, "replay")`` answers the same run from the file, with no network:
a request the recorded run did not make fails instead of reaching the internet.

Three things make a replay follow the recorded run exactly:

- Matching. Every GraphQL request goes to one URL, so requests are matched on
  method, URL (Loop's query string included) and body: a GraphQL body by its
  operation name and variables, a JSON body by its value, a form body by its
  fields. Identical requests are answered in the order they were recorded
  (``allow_playback_repeats=False``), so a THROTTLED answer and its retry differ.
- Time. Loop's list ranges, the scan's first-run lookback and token expiry come
  from loopsync's clocks. While a cassette is in use those clocks are a
  ``VirtualClock`` that starts at the instant stored in the cassette and moves only
  when loopsync sleeps (a throttle wait, a backoff). The sleeps are stored too and
  replayed without waiting, so even jittered backoffs give the same timestamps.
- Hosts. The sandbox runs on a new port each time: loopback origins are written as
  ``http://sandbox.test``, and a replay's requests are rewritten the same way before
  matching, so a replay pointed at ``http://sandbox.test`` (or any loopback port) matches.

vcrpy is optional at run time: only ``--record``/``--replay`` import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopsync.errors import ConfigError
from loopsync.recording.cassette import Recorder, ReplayMismatchError, _Dumper, _vcr, _vcr_config, describe
from loopsync.recording.paths import check_record_path, snapshot_state, state_snapshot_path
from loopsync.recording.scrub import LOOPBACK_ORIGIN, PLACEHOLDER, SANDBOX_ORIGIN, Scrubber
from loopsync.recording.virtual import VirtualClock, _utc_second, virtual_time

# What the CLI, the cassette script and the tests use.
__all__ = [
    "LOOPBACK_ORIGIN", "PLACEHOLDER", "SANDBOX_ORIGIN", "ReplayMismatchError", "VirtualClock", "_Dumper",
    "check_record_path", "for_command", "recording", "snapshot_state", "state_snapshot_path",
]


@contextmanager
def recording(
    path: str | Path,
    mode: str,
    *,
    shop: str | None = None,
    anonymize: bool = False,
    start: datetime | None = None,
    real_sleep: bool = True,
    on_sleep: Callable[[float], None] | None = None,
) -> Iterator[Recorder]:
    """Record (``mode="record"``) or replay (``mode="replay"``) every HTTP request made inside.

    Recording starts loopsync's clock at ``start`` (default: now, to the second) and
    overwrites ``path``. Replaying needs no network and no secret: it raises
    ReplayMismatchError when the run asks for a request the cassette does not hold, or
    ends before using every recorded answer.
    """
    if mode not in ("record", "replay"):
        raise ValueError(f"mode must be 'record' or 'replay', not {mode!r}")
    vcr_module, not_recorded = _vcr()
    path = Path(path)
    if mode == "record":
        clock = VirtualClock(_utc_second(start or datetime.now(UTC)), real_sleep=real_sleep, on_sleep=on_sleep)
        with _record(vcr_module, path, Recorder(path, clock, Scrubber(shop=shop, anonymize=anonymize))) as rec:
            yield rec
        return
    with _replay(vcr_module, not_recorded, path, on_sleep) as rec:
        yield rec


@contextmanager
def _record(vcr_module: Any, path: Path, recorder: Recorder) -> Iterator[Recorder]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    config = _vcr_config(vcr_module, recorder)
    with config.use_cassette(str(path), record_mode="all") as cassette, virtual_time(recorder.clock):
        recorder.cassette = cassette
        yield recorder


@contextmanager
def _replay(
    vcr_module: Any, not_recorded: type[Exception], path: Path, on_sleep: Callable[[float], None] | None
) -> Iterator[Recorder]:
    if not path.is_file():
        raise ConfigError(f"There is no cassette at {path}.")
    # The clock is set from the file once vcrpy has loaded it, below.
    recorder = Recorder(path, VirtualClock(datetime.now(UTC), real_sleep=False), Scrubber(learn=False))
    config = _vcr_config(vcr_module, recorder)
    with ExitStack() as stack:
        cassette = stack.enter_context(
            config.use_cassette(str(path), record_mode="none", allow_playback_repeats=False)
        )
        recorder.cassette = cassette
        loaded = recorder.loaded
        try:
            started = datetime.fromisoformat(str(loaded["recorded_at"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            raise ConfigError(f"{path} does not say when it was recorded; it cannot be replayed.") from None
        recorder.clock = VirtualClock(
            started, real_sleep=False, planned=[float(s) for s in loaded.get("sleeps") or []], on_sleep=on_sleep
        )
        recorder.scrubber.anonymize = bool(loaded.get("anonymized"))
        stack.enter_context(virtual_time(recorder.clock))
        try:
            yield recorder
        except not_recorded as exc:
            raise ReplayMismatchError(
                f"The cassette {path} holds no recorded answer for {describe(exc.failed_request)} "
                f"(request {cassette.play_count + 1}): this run did something the recorded run did not. "
                "Replay with a copy of the state snapshot taken when it was recorded."
            ) from None
        if not cassette.all_played:
            raise ReplayMismatchError(
                f"The run ended after {cassette.play_count} of the {len(cassette)} requests recorded in {path}: "
                "it did less than the recorded run."
            )


def for_command(
    *,
    record: str | os.PathLike[str] | None,
    replay: str | os.PathLike[str] | None,
    anonymize: bool = False,
    store: Any = None,
    shop: str | None = None,
):
    """The context for a command's ``--record``/``--replay``/``--anonymize`` flags (a no-op without them).

    Recording first leaves a scrubbed copy of the state file as it is before the run
    next to the cassette (``state_snapshot_path``): a replay starts from a copy of it.
    """
    # An empty value is a mistake ("--record $FILE" with FILE unset), not "no recording".
    for flag, value in (("--record", record), ("--replay", replay)):
        if value is not None and not str(value).strip():
            raise ConfigError(f"{flag} needs a file name, e.g. {flag} incident.yaml.")
    if record and replay:
        raise ConfigError("Use --record or --replay, not both.")
    if anonymize and not record:
        raise ConfigError("--anonymize only applies to --record.")
    if replay:
        return recording(replay, "replay")
    if not record:
        return nullcontext()
    _vcr()
    record = Path(record)
    check_record_path(record, Path(store.path) if store is not None else None)
    if shop is None and store is not None:
        conn = store.config.connection()
        shop = conn.shop if conn is not None else None
    if store is not None:
        snapshot_state(Path(store.path), state_snapshot_path(Path(record)), anonymize=anonymize)
    return recording(record, "record", shop=shop, anonymize=anonymize)

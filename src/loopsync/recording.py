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

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import yaml

from loopsync import clock as clocks
from loopsync.errors import ConfigError, LoopsyncError
from loopsync.exit_codes import ExitCode

PLACEHOLDER = "[scrubbed]"
SANDBOX_ORIGIN = "http://sandbox.test"
ANONYMOUS_SHOP = "anonymized-shop.myshopify.com"
FORMAT = "loopsync-cassette/1"

# vcrpy's default filters know neither header: each is kept, with its value replaced,
# so a reader sees which credential a request carried but never the credential.
SECRET_HEADERS = ("X-Shopify-Access-Token", "X-Authorization")
SECRET_FORM_FIELDS = ("client_secret",)
SECRET_RESPONSE_KEYS = ("access_token",)
# Only these headers are kept: the rest (Date, Server, User-Agent with our version,
# Content-Length) is noise that would make every re-recording differ.
KEEP_REQUEST_HEADERS = {"content-type", *(h.lower() for h in SECRET_HEADERS)}
KEEP_RESPONSE_HEADERS = {
    "content-type",
    "retry-after",
    "location",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-shopify-shop-api-call-limit",
}
# Shopify token shapes (admin, client secret, custom app, private app), scrubbed wherever they appear.
TOKEN_SHAPE = re.compile(r"\bshp(?:at|ss|ca|pa|ua)_[A-Za-z0-9_]+")
LOOPBACK_ORIGIN = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?", re.IGNORECASE)
SHORTEST_SECRET = 4
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "loopsync_body")


class ReplayMismatchError(LoopsyncError):
    """The replayed run asked for something the recorded run did not (or stopped early)."""

    exit_code = ExitCode.USAGE


def _vcr():
    try:
        import vcr
        from vcr.errors import CannotOverwriteExistingCassetteException
    except ImportError:
        raise ConfigError(
            "--record and --replay need the vcrpy package, which is not installed: pip install vcrpy"
        ) from None
    return vcr, CannotOverwriteExistingCassetteException


# --- time ---------------------------------------------------------------------------


class VirtualClock:
    """loopsync's wall clock, monotonic clock and sleep while a cassette is in use.

    Time starts at ``start`` and advances only by what is slept, so the same run
    reads the same times whether it is recorded or replayed. ``planned`` sleeps (a
    replay's) replace the durations asked for, in order; ``real_sleep`` really waits
    (a recording against real services must respect Shopify's throttle).
    """

    def __init__(
        self,
        start: datetime,
        *,
        real_sleep: bool,
        planned: list[float] | None = None,
        on_sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.start = start.astimezone(UTC)
        self.elapsed = 0.0
        self.real_sleep = real_sleep
        self.planned = list(planned or [])
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        index = len(self.slept)
        seconds = self.planned[index] if index < len(self.planned) else round(max(float(seconds), 0.0), 6)
        if self.real_sleep and seconds > 0:
            time.sleep(seconds)
        self.slept.append(seconds)
        self.elapsed += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def virtual_time(virtual: VirtualClock):
    """Every clock loopsync reads for API work (``loopsync.clock``) becomes ``virtual``.

    The state file's own timestamps stay real.
    """
    return clocks.use(clocks.Clock(now=virtual.now, monotonic=virtual.monotonic, sleep=virtual.sleep))


# --- scrubbing ------------------------------------------------------------------------


class Scrubber:
    """Finds the credentials a run sends and keeps them (and the shop, if asked) out of the cassette.

    Secrets are learned from what goes over the wire (the two auth headers, the form's
    client_secret, the token endpoint's access_token), so nothing has to be told which
    values are secret; token-shaped strings are scrubbed wherever they appear.
    """

    def __init__(self, *, shop: str | None = None, anonymize: bool = False, learn: bool = True) -> None:
        self.secrets: set[str] = set()
        self.shop = shop.lower() if shop else None
        self.anonymize = anonymize
        self.learn = learn

    def harvest(self, key: str, value: Any, request: Any = None) -> str:
        """vcrpy filter callback: remember the value, write the placeholder."""
        if self.learn and isinstance(value, str | bytes):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if len(text) >= SHORTEST_SECRET and text != PLACEHOLDER:
                self.secrets.add(text)
        return PLACEHOLDER

    def text(self, value: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            value = value.replace(secret, PLACEHOLDER)
        value = TOKEN_SHAPE.sub(PLACEHOLDER, value)
        value = LOOPBACK_ORIGIN.sub(SANDBOX_ORIGIN, value)
        if self.anonymize and self.shop:
            value = re.sub(re.escape(self.shop), ANONYMOUS_SHOP, value, flags=re.IGNORECASE)
        return value

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            try:
                return self.text(value.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                return value
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.deep(v) for v in value)
        return value

    def leaks(self, text: str) -> list[str]:
        """Which learned secrets (by position, never by value) or token shapes remain in ``text``."""
        found = [f"secret #{i}" for i, s in enumerate(sorted(self.secrets)) if s in text]
        if TOKEN_SHAPE.search(text):
            found.append("a Shopify token-shaped string")
        return found

    # -- vcrpy hooks --

    def request(self, request: Any) -> Any:
        request.uri = self.text(request.uri)
        request.headers = {k: v for k, v in request.headers.items() if k.lower() in KEEP_REQUEST_HEADERS}
        if request.body:
            request.body = self.deep(request.body)
        return request

    def response(self, response: dict) -> dict:
        headers = response.get("headers") or {}
        response["headers"] = {k: v for k, v in headers.items() if k.lower() in KEEP_RESPONSE_HEADERS}
        body = response.get("body") or {}
        raw = body.get("string")
        if isinstance(raw, bytes | str) and raw:
            ok, parsed = _json(raw)
            if ok and isinstance(parsed, dict) and any(k in parsed for k in SECRET_RESPONSE_KEYS):
                for key in SECRET_RESPONSE_KEYS:
                    if key in parsed:
                        parsed[key] = self.harvest(key, parsed[key])
                raw = json.dumps(parsed, separators=(",", ":")).encode("utf-8")
            body["string"] = self.deep(raw)
        return response


def _json(raw: bytes | str) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False, None


# --- matching ------------------------------------------------------------------------


def _body_key(body: Any) -> tuple[str, Any]:
    """What identifies a request body: GraphQL operation + variables, a JSON value, form fields, or bytes."""
    if body is None or body == b"" or body == "":
        return ("empty", None)
    raw = body if isinstance(body, bytes) else str(body).encode("utf-8")
    ok, parsed = _json(raw)
    if ok:
        if isinstance(parsed, dict) and "query" in parsed:
            return ("graphql", {"operationName": parsed.get("operationName"), "variables": parsed.get("variables") or {}})
        return ("json", parsed)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ("bytes", raw)
    if "=" in text and " " not in text:
        return ("form", sorted(parse_qsl(text, keep_blank_values=True)))
    return ("text", text)


def loopsync_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the request bodies mean the same (see ``_body_key``)."""
    a, b = _body_key(r1.body), _body_key(r2.body)
    assert a == b, f"request bodies differ: {a!r} != {b!r}"


def describe(request: Any) -> str:
    """METHOD URL (GraphQL operation), for messages. Bodies are never quoted: they may carry data."""
    kind, key = _body_key(request.body)
    parts = urlsplit(request.uri)
    where = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    extra = f" ({key['operationName']})" if kind == "graphql" and key.get("operationName") else ""
    return f"{request.method} {where}{extra}"


# --- the YAML format -----------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a repeated value is written out again, not as an &anchor a reader must chase


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # GraphQL documents read as documents, not as one escaped line.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _readable_body(body: Any) -> Any:
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
    if isinstance(body, str) and body:
        ok, parsed = _json(body)
        if ok:
            return {"json": parsed}
    return body


def _wire_body(body: Any) -> Any:
    if isinstance(body, dict) and set(body) == {"json"}:
        return json.dumps(body["json"], separators=(",", ":"), ensure_ascii=False)
    return body


def _check_cassette(path: Path, doc: dict) -> None:
    """Refuse, in one sentence, a cassette whose fields vcrpy or the replay would trip over.

    Cassettes are meant to be read and sometimes edited by hand (to cut an order out, say);
    a field left in the wrong shape must be reported as such, not crash the replay later.
    """

    def bad(where: str, what: str) -> ConfigError:
        return ConfigError(f"{path} cannot be replayed: {where} {what} (was it edited by hand?).")

    sleeps = doc.get("sleeps")
    if sleeps is not None and (
        not isinstance(sleeps, list)
        or not all(isinstance(s, int | float) and not isinstance(s, bool) and s >= 0 for s in sleeps)
    ):
        raise bad("sleeps", "must be a list of seconds, each a number of at least 0")
    interactions = doc.get("interactions")
    if interactions is None:
        return
    if not isinstance(interactions, list):
        raise bad("interactions", "must be a list")
    for number, item in enumerate(interactions, start=1):
        where = f"interaction {number}"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict) \
                or not isinstance(item.get("response"), dict):
            raise bad(where, "must have a request and a response")
        req, resp = item["request"], item["response"]
        if not isinstance(req.get("method"), str) or not req["method"].isalpha():
            raise bad(f"{where}'s request", "has no HTTP method")
        if not isinstance(req.get("uri"), str) or not re.match(r"https?://[^/\s]+", req["uri"]):
            raise bad(f"{where}'s request", "has no http(s) uri")
        status = resp.get("status")
        if not (
            isinstance(status, dict)
            and isinstance(status.get("code"), int)
            and not isinstance(status.get("code"), bool)
            and 100 <= status["code"] <= 599
            and isinstance(status.get("message", ""), str)
        ):
            raise bad(f"{where}'s response", "needs a status with a code from 100 to 599 and a message")
        for side, part in (("request", req), ("response", resp)):
            headers = part.get("headers")
            if headers is not None and not (
                isinstance(headers, dict)
                and all(
                    isinstance(k, str)
                    and (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)))
                    for k, v in headers.items()
                )
            ):
                raise bad(f"{where}'s {side} headers", "must map each name to text or a list of texts")
            body = part.get("body")
            if body is not None and not isinstance(body, str | bytes) \
                    and not (isinstance(body, dict) and set(body) == {"json"}):
                raise bad(f"{where}'s {side} body", "must be text or a mapping with just json")


class Serializer:
    """vcrpy's cassette as readable YAML: JSON bodies decoded, keys in a fixed order, a loopsync header.

    The header holds what a replay needs besides the interactions: when the run
    started and what it slept. Loading keeps that header in ``loaded``.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def serialize(self, data: dict) -> str:
        rec = self.recorder
        interactions = []
        for item in data.get("interactions", []):
            req, resp = item["request"], item["response"]
            interactions.append(
                {
                    "request": {
                        "method": req["method"],
                        "uri": req["uri"],
                        "headers": {k: req["headers"][k] for k in sorted(req.get("headers") or {})},
                        "body": _readable_body(req.get("body")),
                    },
                    "response": {
                        "status": resp["status"],
                        "headers": {k: resp["headers"][k] for k in sorted(resp.get("headers") or {})},
                        "body": _readable_body((resp.get("body") or {}).get("string")),
                    },
                }
            )
        doc = {
            "format": FORMAT,
            "recorded_at": rec.clock.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sleeps": list(rec.clock.slept),
            "anonymized": rec.scrubber.anonymize,
            "version": data.get("version", 1),
            "interactions": rec.scrubber.deep(interactions),
        }
        text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
        leaks = rec.scrubber.leaks(text)
        if leaks:  # the hooks above should make this impossible; never write a secret to disk
            raise RuntimeError(f"refusing to save a cassette that still holds {', '.join(leaks)}")
        return text

    def deserialize(self, text: str) -> dict:
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise ConfigError(f"{self.recorder.path} is not readable YAML; it cannot be replayed.") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f"{self.recorder.path} is not a loopsync cassette ({FORMAT}).")
        _check_cassette(self.recorder.path, doc)
        self.recorder.loaded = {k: v for k, v in doc.items() if k != "interactions"}
        interactions = []
        for item in doc.get("interactions") or []:
            req, resp = item["request"], item["response"]
            interactions.append(
                {
                    "request": {
                        "method": req["method"],
                        "uri": req["uri"],
                        "headers": req.get("headers") or {},
                        "body": _wire_body(req.get("body")),
                    },
                    "response": {
                        "status": resp["status"],
                        "headers": resp.get("headers") or {},
                        "body": {"string": _wire_body(resp.get("body"))},
                    },
                }
            )
        return {"version": doc.get("version", 1), "interactions": interactions}


# --- recording and replaying -----------------------------------------------------------


class Recorder:
    """State shared by one recording or replay: the clock, the scrubber, what the file said."""

    def __init__(self, path: Path, clock: VirtualClock, scrubber: Scrubber) -> None:
        self.path = path
        self.clock = clock
        self.scrubber = scrubber
        self.loaded: dict[str, Any] = {}
        self.cassette: Any = None


def _vcr_config(vcr_module: Any, recorder: Recorder) -> Any:
    scrub = recorder.scrubber
    config = vcr_module.VCR(
        serializer="loopsync-yaml",
        match_on=MATCH_ON,
        filter_headers=[(h, scrub.harvest) for h in SECRET_HEADERS],
        filter_post_data_parameters=[(f, scrub.harvest) for f in SECRET_FORM_FIELDS],
        before_record_request=scrub.request,
        before_record_response=scrub.response,
        decode_compressed_response=True,
    )
    config.register_serializer("loopsync-yaml", Serializer(recorder))
    config.register_matcher("loopsync_body", loopsync_body)
    config.register_persister(_persister(vcr_module))
    return config


def _persister(vcr_module: Any) -> type:
    """vcrpy's file persister, writing the cassette owner-only (0600) from the first byte.

    Credentials are scrubbed, but a cassette still holds customer e-mail addresses and
    order details, so it gets the state snapshot's mode, not the umask's.
    """
    from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
    from vcr.serialize import deserialize, serialize

    class PrivatePersister(FilesystemPersister):
        @classmethod
        def load_cassette(cls, cassette_path: Any, serializer: Any) -> Any:
            path = Path(cassette_path)
            if not path.is_file():
                raise CassetteNotFoundError()
            try:
                data = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                # vcrpy would treat it as an empty cassette; it is a wrong file.
                raise ConfigError(f"{path} is not a loopsync cassette (it is not text).") from None
            if not data.strip():
                raise ConfigError(f"{path} is empty; it cannot be replayed.")
            return deserialize(data, serializer)

        @staticmethod
        def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
            data = serialize(cassette_dict, serializer)
            fd = os.open(cassette_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
                f.write(data)

    return PrivatePersister


def _utc_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def state_snapshot_path(cassette: Path) -> Path:
    """Where ``--record`` leaves the scrubbed copy of the state file as it was before the run."""
    return cassette.with_name(cassette.name.rsplit(".", 1)[0] + ".state.db")


def snapshot_state(source: Path, dest: Path, *, anonymize: bool = False) -> None:
    """Copy the state file to ``dest`` with every credential replaced by the placeholder.

    A replay reads its connection from this copy; it needs no real secret because the
    cassette answers every request. Freed pages are wiped (secure_delete + VACUUM) so
    the old values are not left in the file.
    """
    from loopsync.store import Store

    if _same_file(source, dest):
        # The unlink below would delete the live state file (SQLite then backs up into itself, forever).
        raise ConfigError(f"The state snapshot {dest} would replace the state file itself.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
        leftover.unlink(missing_ok=True)
    # Placeholders only, but a state file should still be private (and `cp` keeps the mode).
    dest.touch(mode=0o600)
    src = sqlite3.connect(str(source))
    try:
        out = sqlite3.connect(str(dest))
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()
    with Store.open(dest) as store:
        conn = store.config.connection()
        if conn is not None:
            shop = ANONYMOUS_SHOP if anonymize else conn.shop

            def url(value: str | None) -> str | None:
                if value is None or not anonymize:
                    return value
                return re.sub(re.escape(conn.shop), ANONYMOUS_SHOP, value, flags=re.IGNORECASE)

            store.config.save_connection(
                shop=shop,
                shopify_auth=conn.shopify_auth,
                shopify_token=PLACEHOLDER if conn.shopify_token else None,
                client_id=conn.client_id,
                client_secret=PLACEHOLDER if conn.client_secret else None,
                shopify_api_url=url(conn.shopify_api_url),
                loop_api_key=PLACEHOLDER if conn.loop_api_key else None,
                loop_api_url=url(conn.loop_api_url),
                scopes=conn.scopes,
            )
            if conn.access_token:
                # The cached token's expiry decides whether the replayed run renews it.
                store.config.save_shopify_access_token(PLACEHOLDER, conn.access_token_expires_at)
    db = sqlite3.connect(str(dest), isolation_level=None)
    try:
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("VACUUM")
    finally:
        db.close()


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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        clock = VirtualClock(_utc_second(start or datetime.now(UTC)), real_sleep=real_sleep, on_sleep=on_sleep)
        recorder = Recorder(path, clock, Scrubber(shop=shop, anonymize=anonymize))
        config = _vcr_config(vcr_module, recorder)
        with config.use_cassette(str(path), record_mode="all") as cassette, virtual_time(clock):
            recorder.cassette = cassette
            yield recorder
        return

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


def _same_file(a: Path, b: Path) -> bool:
    """One file under two names: the same path once resolved, or a hard link to it."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _state_companions(state_file: Path) -> list[Path]:
    # SQLite keeps committed data in -wal until a checkpoint; losing it loses the data.
    return [state_file, *(Path(f"{state_file}{s}") for s in ("-wal", "-shm", "-journal", ".lock"))]


def check_record_path(record: Path, state_file: Path | None) -> None:
    """Refuse a ``--record`` path before anything is written, in one sentence.

    A recording never replaces a file: not the state file (which would lose the
    credentials, manual releases and overrides), nor its snapshot's place, nor an older
    recording (which may be the one a bug report needs). The directory must exist
    already: a typo is reported, not created.
    """
    snapshot = state_snapshot_path(record)
    if record.is_dir():
        raise ConfigError(f"--record {record} is a directory: name a file in it, e.g. {record / 'incident.yaml'}.")
    if not record.parent.is_dir():
        what = "is not a directory" if record.parent.exists() else "does not exist"
        raise ConfigError(f"--record {record}: the directory {record.parent} {what}.")
    if state_file is not None:
        written = [record, snapshot, Path(f"{snapshot}-wal"), Path(f"{snapshot}-shm")]
        if any(_same_file(w, kept) for w in written for kept in _state_companions(state_file)):
            raise ConfigError(
                f"--record {record} would write over the state file {state_file} "
                f"(the recording and its snapshot {snapshot.name}): record to another name, e.g. incident.yaml."
            )
    for path in (record, snapshot):
        if path.exists() or path.is_symlink():
            raise ConfigError(
                f"{path} already exists and a recording never replaces a file: "
                "move it away or record to another name."
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

"""The cassette file: how requests are matched, the readable YAML format, and vcrpy's wiring."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import yaml

from loopsync.errors import ConfigError, LoopsyncError
from loopsync.exit_codes import ExitCode
from loopsync.recording.scrub import FORMAT, MATCH_ON, SECRET_FORM_FIELDS, SECRET_HEADERS, Scrubber, _json
from loopsync.recording.virtual import VirtualClock


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


# libyaml's C emitter and parser, where PyYAML was built with it: replaying a cassette spent
# most of its time in the pure-Python parser. Both write and read the same YAML.
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a repeated value is written out again, not as an &anchor a reader must chase


def _str(dumper: Any, value: str) -> yaml.Node:
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
        # libyaml ends some documents with an explicit "..." that the Python emitter leaves out.
        text = text.removesuffix("...\n")
        leaks = rec.scrubber.leaks(text)
        if leaks:  # the hooks above should make this impossible; never write a secret to disk
            raise RuntimeError(f"refusing to save a cassette that still holds {', '.join(leaks)}")
        return text

    def deserialize(self, text: str) -> dict:
        try:
            doc = yaml.load(text, Loader=_SafeLoader) or {}
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



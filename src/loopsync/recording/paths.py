"""Where a recording goes, and the scrubbed snapshot of the state file beside it."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from loopsync.errors import ConfigError
from loopsync.recording.scrub import ANONYMOUS_SHOP, PLACEHOLDER


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
            # save_connection keeps a stored webhook secret it is not given: replace it outright.
            store.config.replace_webhook_secrets(
                PLACEHOLDER if conn.webhook_secret else None,
                PLACEHOLDER if conn.previous_webhook_secret else None,
                PLACEHOLDER if conn.loop_webhook_secret else None,
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



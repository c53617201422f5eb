"""The state file on disk: creating it 0600, what can be told before SQLite opens it,
the read-only in-memory copy, and the check that its tables are the ones loopsync made."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from loopsync.errors import StateFileError
from loopsync.store.schema import migrations

_SQLITE_HEADER = b"SQLite format 3\x00"


# Descriptors used to read state file headers, by (device, inode), never closed: closing any
# descriptor of a file drops every POSIX lock this process holds on it, SQLite's included,
# and another process closing its connection would then think it was the last one and
# delete the WAL index under our open connections (later reads fail with "disk I/O error").
_HEADER_FDS: dict[tuple[int, int], int] = {}


def _file_fd(path: Path, st: os.stat_result) -> int:
    key = (st.st_dev, st.st_ino)
    fd = _HEADER_FDS.get(key)
    if fd is None:
        fd = _HEADER_FDS[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return fd


def _read_header(path: Path, st: os.stat_result) -> bytes:
    return os.pread(_file_fd(path, st), len(_SQLITE_HEADER), 0)


@functools.cache
def managed_columns() -> dict[str, tuple[str, ...]]:
    """Every table the migrations create, with its columns: read from a scratch database they built,
    so a new migration needs no second list kept in step with it."""
    scratch = Database(memory=True, execute_plugins=False)
    try:
        migrations.apply(scratch)
        skip = {Migrations.migrations_table, "sqlite_sequence"}
        return {t: tuple(c.name for c in scratch[t].columns) for t in scratch.table_names() if t not in skip}
    finally:
        scratch.close()


def snapshot_connection(path: Path, st: os.stat_result, busy_timeout: float) -> sqlite3.Connection:
    """An in-memory copy of the state file as it is now, for a store that only reads.

    SQLite's own read-only open (``mode=ro``) of a WAL file creates the -wal and -shm
    files when they are missing, leaving them behind (with a 0400 file's mode, which
    later breaks the writer), and fails in a read-only directory; ``immutable=1``
    avoids that but reads with no locks. So: with no -wal file, every committed change
    is in the file itself and its bytes are the state, taken only if the file and the
    -wal's absence did not change while they were read (a checkpoint would have to
    change both). With a -wal (a scan is running, or one was killed), SQLite must read
    it: through ``mode=ro``, which then creates nothing, copied out with the backup API.
    """
    wal = Path(f"{path}-wal")
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        if not wal.exists():
            data = _stable_bytes(path, st)
            if data is not None and not wal.exists():
                if data:
                    image = bytearray(data)
                    if image[18:20] == b"\x02\x02":
                        image[18:20] = b"\x01\x01"  # WAL flag off: an in-memory database has no WAL
                    memory.deserialize(bytes(image))
                return memory
        source = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout)
        try:
            source.backup(memory)
        finally:
            source.close()
        return memory
    except BaseException:
        memory.close()
        raise


def _stable_bytes(path: Path, st: os.stat_result) -> bytes | None:
    """The file's bytes, or None if it changed while they were read."""
    fd = _file_fd(path, st)
    before = os.fstat(fd)
    chunks, offset = [], 0
    while offset < before.st_size:
        chunk = os.pread(fd, min(1 << 20, before.st_size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    after = os.fstat(fd)
    same = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and offset == after.st_size
    replaced = path.stat().st_ino != after.st_ino  # renamed over, e.g. a backup restored meanwhile
    return b"".join(chunks) if same and not replaced else None


def prepare_file(path: Path, warnings: list[str]) -> None:
    """Create the parent directory and, if absent, the file itself with mode 0600.

    sqlite would create the file with the umask's mode (often 0644); creating it
    ourselves first means the API keys it will hold are never world-readable.
    SQLite gives its -wal and -shm files the database file's mode.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateFileError(
            f"Cannot create the directory for the state file {path} ({exc.strerror})."
        ) from None
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise StateFileError(
                f"The state file {path} cannot be created: its directory is read-only."
            ) from None
        raise StateFileError(f"The state file {path} cannot be created ({exc.strerror}).") from None
    else:
        os.close(fd)
        return
    check_existing(path, warnings)


def check_existing(path: Path, warnings: list[str]) -> os.stat_result:
    """What can be told about an existing state file before SQLite opens it; warns if others can read it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StateFileError(f"There is no state file at {path}.") from None
    except OSError as exc:
        raise StateFileError(f"The state file {path} cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(f"{path} is not a loopsync state file (it is not a regular file).")
    if st.st_size and st.st_size < 100:
        raise StateFileError(f"{path} is not a loopsync state file (database disk image is malformed).")
    if st.st_size:
        try:
            header = _read_header(path, st)
        except OSError as exc:
            raise StateFileError(f"The state file {path} cannot be read ({exc.strerror}).") from None
        if header != _SQLITE_HEADER:
            raise StateFileError(f"{path} is not a loopsync state file (file is not a database).")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        warnings.append(
            f"The state file {path} is readable by other users (mode {mode:04o}) and holds API keys; "
            f"run: chmod 600 {path}"
        )
    return st


def check_columns(db: Database, path: Path) -> None:
    """Refuse a file whose tables differ from what the migrations made (edited by hand or by
    another program): rows are read into fixed records, and an unknown column cannot be."""
    for table, expected in managed_columns().items():
        found = [row[1] for row in db.execute(f"PRAGMA table_info([{table}])").fetchall()]
        if not found:
            raise StateFileError(f"{path} is not a loopsync state file (its {table} table is missing).")
        extra = [c for c in found if c not in expected]
        if extra:
            raise StateFileError(
                f"The state file {path} looks damaged: {table}.{extra[0]} is not a column loopsync "
                "manages (was the file changed by hand or by another program?)."
            )
        missing = [c for c in expected if c not in found]
        if missing:
            raise StateFileError(
                f"The state file {path} looks damaged: its {table} table has no {missing[0]} column."
            )

def check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise StateFileError(f"The state file {path} is read-only; loopsync needs to write to it.")

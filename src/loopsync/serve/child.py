"""`loopsync serve` as a child process, for `loopsync demo` and the webhook benchmarks.

A child, not a thread: serve owns its process's signals (SIGTERM finishes the order in
hand) and its own state file connections, exactly as under systemd, and a benchmark that
measures it from outside measures what a merchant runs. Importing this module loads
nothing of the ASGI stack.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LISTENING = re.compile(r"listening on (http://[0-9.]+:\d+)")


class ServeChild:
    """``loopsync serve --db DB --port 0`` with its stderr in a temporary file the parent reads."""

    def __init__(self, db: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 20.0) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="loopsync-serve-", suffix=".log", delete=False)  # noqa: SIM115
        child_env = dict(os.environ if env is None else env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loopsync", "serve", "--db", str(db), "--port", "0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, env=child_env,
        )
        match = LISTENING.search(self.wait_for(LISTENING.pattern, timeout))
        assert match is not None
        self.url = match.group(1)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """The first line of serve's stderr matching ``pattern``; RuntimeError if serve exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopsync serve exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"loopsync serve did not log {pattern!r} within {timeout:g} s:\n{self.log()}")
            time.sleep(0.01)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as systemd stops it; SIGKILL only if it does not exit in time. Returns its exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        finally:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> ServeChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

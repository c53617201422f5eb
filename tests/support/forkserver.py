"""Killable `loopsync` processes without paying for a fresh interpreter each time.

The reliability tests need scans that are real processes (a failpoint SIGKILLs them, a
signal interrupts them, a lock dies with them), and each `python -m loopsync` spends
about 0.6 s importing Typer, Rich, requests, sqlite-utils and the reconciler before it
does anything. A zygote pays that once: this file, run as a script, imports loopsync
and then, for each request on its stdin, ``os.fork()``s a child that becomes the
command (argv, environment, working directory, stdout and stderr to files) and ends
with ``os._exit(code)`` or by the signal that killed it, exactly as a fresh process
would. The zygote opens no thread, socket or SQLite connection, so nothing is
half-held in a child.

:class:`ForkServer` is the test side: one zygote per test process (pytest-xdist
worker), started on first use; :meth:`ForkServer.spawn` returns a :class:`Forked`
with the ``Popen`` methods the tests use (``pid``, ``poll``, ``kill``,
``communicate``, ``returncode``). The zygote is the children's parent, so it reaps
them and reports each exit status on its stdout.

`tests/reliability/test_crash_matrix.py` keeps one case that spawns `python -m
loopsync` for real, so the entry point itself stays covered.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path

# -- the zygote (this file run as a script) ----------------------------------------------


def _preload() -> None:
    """Everything a scan imports lazily, imported once here so that children start warm."""
    import requests  # noqa: F401
    import rich.console  # noqa: F401
    import rich.table  # noqa: F401
    import sqlite_utils  # noqa: F401

    import loopsync.cli  # noqa: F401
    import loopsync.loop  # noqa: F401
    import loopsync.reconcile  # noqa: F401
    import loopsync.render  # noqa: F401
    import loopsync.service  # noqa: F401
    import loopsync.shopify  # noqa: F401
    import loopsync.store  # noqa: F401

    command = loopsync.cli._command()  # the Click tree, which main() would otherwise build in every child
    # Typer coerces parameters through pydantic, imported on the first parse: 0.15 s a child.
    command.commands["scan"].make_context("scan", ["--db", os.devnull, "--dry-run"])
    # `status`, and `serve` (tests/support/serve.py) with Starlette, uvicorn and prometheus-client.
    import loopsync.serve.app  # noqa: F401
    import loopsync.serve.runner  # noqa: F401
    import loopsync.status  # noqa: F401


def _child(request: dict, zygote_fds: list[int]) -> None:
    """In the forked child: become `loopsync <argv>` and never return."""
    code = 70
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in zygote_fds:
            os.close(fd)
        # A fresh interpreter seeds from the OS; a fork would repeat the zygote's sequence (jitter).
        random.seed()
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["loopsync", *request["argv"]]
        # sys.stdout and sys.stderr stay the interpreter's own objects on fds 1 and 2, so they
        # buffer as a fresh process's would (stdout by block, stderr by line); nothing was
        # written through them in the zygote, whose replies go through a dup of its stdout.

        from loopsync.cli import main

        code = main(request["argv"])
    except SystemExit as exc:
        # As the interpreter exits on one: None is 0, any other non-integer is printed and 1.
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - an uncaught crash exits 1 with its traceback, as python would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # What interpreter exit would still do: os._exit skips atexit, so flush logs and streams here.
        if "logging" in sys.modules:
            sys.modules["logging"].shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream has nothing left to flush
                pass
        os._exit(int(code) & 0xFF)


def _serve() -> None:
    _preload()
    assert threading.active_count() == 1, "an import started a thread: forking now would copy its locks"
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # A handler (not SIG_DFL) so that SIGCHLD writes to the wakeup fd.
    signal.signal(signal.SIGCHLD, lambda *_: None)
    requests_in = os.fdopen(0, "rb", buffering=0)
    pending = b""
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    reply.write(json.dumps({"ready": os.getpid()}) + "\n")
    running: dict[int, int] = {}  # pid -> request id
    zygote_fds = [wake_r, wake_w, reply.fileno(), selector.fileno()]
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                _reap(reply, running)
                continue
            chunk = requests_in.read(65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, zygote_fds)
                running[pid] = request["id"]
                reply.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
        _reap(reply, running)


def _reap(reply, running: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        # Popen's convention: minus the signal number for a child a signal killed.
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        reply.write(json.dumps({"exited": running.pop(pid), "code": code}) + "\n")


# -- the test side --------------------------------------------------------------------------


class Forked:
    """One forked command, as much of ``subprocess.Popen`` as the tests use."""

    def __init__(self, server: ForkServer, request_id: int, pid: int, out: Path, err: Path) -> None:
        self._server = server
        self._id = request_id
        self.pid = pid
        self._out, self._err = out, err
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server._exit_code(self._id, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._server._exit_code(self._id, timeout=timeout)
            if code is None:
                raise subprocess.TimeoutExpired(f"loopsync (pid {self.pid})", timeout)
            self.returncode = code
        return self.returncode

    def send_signal(self, signum: int) -> None:
        # The zygote reaps a child only after it exits, so until then the pid is still ours.
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                # It exited and was reaped after poll() asked, before its exit code reached us
                # (subprocess.Popen.send_signal allows for the same gap): nothing left to signal.
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._out.read_text(encoding="utf-8"), self._err.read_text(encoding="utf-8")


class ForkServer:
    """The zygote of this test process, started on first use and stopped at exit."""

    _instance: ForkServer | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> ForkServer:
        with cls._instance_lock:
            if cls._instance is None or cls._instance._proc.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
        self._proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=env, text=True, bufsize=1)
        self._cond = threading.Condition()
        self._pids: dict[int, int] = {}
        self._exits: dict[int, int] = {}
        self._next_id = 0
        ready = json.loads(self._proc.stdout.readline() or "{}")
        assert "ready" in ready, "the fork server did not start"
        threading.Thread(target=self._read, name="forkserver-replies", daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "pid" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._exits[message["exited"]] = message["code"]
                self._cond.notify_all()

    def spawn(self, argv: list[str], *, env: dict[str, str], out: Path, err: Path,
              cwd: str | None = None) -> Forked:
        with self._cond:
            self._next_id += 1
            request_id = self._next_id
            request = {"id": request_id, "argv": argv, "env": env, "cwd": cwd or os.getcwd(),
                       "out": str(out), "err": str(err)}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            assert self._cond.wait_for(lambda: request_id in self._pids, timeout=30), "the fork server stopped"
            pid = self._pids.pop(request_id)
        return Forked(self, request_id, pid, out, err)

    def _exit_code(self, request_id: int, *, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: request_id in self._exits, timeout=timeout)
            return self._exits.pop(request_id, None)

    def close(self) -> None:
        """End the zygote (EOF on its stdin) and reap it, so that its CPU time is counted with
        the test run's; children still running keep running."""
        if self._proc.stdin.closed:
            return
        self._proc.stdin.close()
        self._proc.wait(timeout=30)

    @classmethod
    def shutdown(cls) -> None:
        """Close this process's zygote, if it started one (the top conftest calls it at the end)."""
        with cls._instance_lock:
            if cls._instance is not None:
                cls._instance.close()
                cls._instance = None


if __name__ == "__main__":
    # Run as a script, this directory heads sys.path, and its cli.py, sandbox.py, state.py ...
    # would shadow any top-level module of those names that a library imports.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)
    _serve()

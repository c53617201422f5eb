"""Fixtures shared by the product's tests: thin wrappers over the helpers in ``support/``.

No test touches real state or the internet: every LOOPSYNC_* variable is
removed, the user data directory points into tmp, and the APIs are the sandbox
on 127.0.0.1.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from loopsync.sandbox.server import Sandbox
from support.checks import DEMO_SECRETS, assert_clean_error, assert_no_secrets
from support.cli import Result, run_cli
from support.network import no_network  # noqa: F401 - a fixture, found by name
from support.sandbox import WorldProbe, sandbox_env
from support.tally import TALLY

# Read once at import: the isolated_env fixture removes every LOOPSYNC_* variable before each test.
FULL = os.environ.get("LOOPSYNC_FULL", "") not in ("", "0")

# pytester runs a throwaway pytest session in-process: how tests/test_support.py proves the guard fails.
pytest_plugins = ["pytester"]


def pytest_configure(config) -> None:
    """Temporary files (state files, cassettes, sandboxes' data) go to /dev/shm when it is a
    writable tmpfs and nobody chose TMPDIR: every state-file commit fsyncs, which on a disk cost
    the suite about a sixth of its time and proves nothing a test checks. A SIGKILL, the crash
    the tests do check, leaves the page cache to the kernel either way."""
    shm = Path("/dev/shm")
    if "TMPDIR" in os.environ or config.option.basetemp or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return
    os.environ["TMPDIR"] = str(shm)  # subprocesses and fork-server children too
    tempfile.tempdir = str(shm)


def pytest_collection_modifyitems(config, items) -> None:
    """``@pytest.mark.slow`` tests (long randomized runs) run only under LOOPSYNC_FULL=1 (make test-full)."""
    if FULL:
        return
    skip = pytest.mark.skip(reason="long randomized run: set LOOPSYNC_FULL=1 (make test-full)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("LOOPSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture(autouse=True)
def _no_network_when_marked(request) -> None:
    """``@pytest.mark.no_network`` (or a module's ``pytestmark``) turns the guard on."""
    if request.node.get_closest_marker("no_network"):
        request.getfixturevalue("no_network")


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1, for answers the sandbox never gives (support/fakehttp.py)."""
    from support.fakehttp import FakeServer

    with FakeServer() as srv:
        yield srv


@pytest.fixture
def fake_time():
    """An injected clock and sleep: sleeping advances the clock and is recorded."""
    from support.fakehttp import FakeTime

    return FakeTime()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh demo store per test, served over real HTTP on 127.0.0.1."""
    with Sandbox(scenario="demo") as sb:
        yield sb


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


@pytest.fixture
def connected(sandbox, db, cli) -> Path:
    """A state file connected to the demo sandbox with its static token."""
    result = cli(["connect", "--db", str(db)], env=sandbox_env(sandbox))
    assert result.code == 0, result.output
    return db


@pytest.fixture
def probe(sandbox) -> WorldProbe:
    return WorldProbe(sandbox)


@pytest.fixture
def checks():
    """The assertion helpers of support/checks.py as a fixture (tests may also import them)."""
    return SimpleNamespace(no_secrets=assert_no_secrets, clean_error=assert_clean_error, secrets=DEMO_SECRETS)


@pytest.fixture
def env_for() -> Callable[..., dict[str, str]]:
    """``support.sandbox.sandbox_env`` as a fixture."""
    return sandbox_env


@pytest.fixture
def secret_safe_cli(checks) -> Callable[..., Result]:
    """``cli`` that also fails the test if any demo credential shows up in what a command printed."""

    def run(args: list[str], **kwargs) -> Result:
        result = run_cli(args, **kwargs)
        checks.no_secrets(result)
        return result

    return run


# -- the reliability numbers (support/tally.py), summed over pytest-xdist workers -------------
# These hooks live here, not in tests/reliability/conftest.py: the xdist controller collects
# nothing, so it never loads a subdirectory's conftest.


def pytest_sessionfinish(session) -> None:
    from support.forkserver import ForkServer

    # Reaped here, not only at exit: a pytest-xdist worker may end without running atexit.
    ForkServer.shutdown()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["reliability_tally"] = TALLY.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    doc = getattr(node, "workeroutput", {}).get("reliability_tally")
    if doc:
        TALLY.merge(doc)


def pytest_terminal_summary(terminalreporter) -> None:
    line = TALLY.summary()
    if line:
        terminalreporter.write_line(line)

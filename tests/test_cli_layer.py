"""The command layer stays thin and quick to start.

`cli.py` parses, calls `service` and renders: it never reaches the state file or the
reconciler itself. And what cron and support type most (`--help`, `--version`,
`status`) loads none of the heavy modules a scan needs. Each check runs a fresh
interpreter: `sys.modules` of this test process already holds everything.
"""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loopsync import cli, service

CLI_SOURCE = Path(cli.__file__).read_text()

#: What the command layer must not import: it goes through `service` for all of these.
BEHIND_SERVICE = ("loopsync.store", "loopsync.reconcile", "loopsync.status")

#: What a scan needs and `--help`, `--version` and `status` must not pay for.
HEAVY = (
    "graphql", "requests", "tenacity", "loopsync.reconcile", "loopsync.sandbox",
    "starlette", "uvicorn", "prometheus_client", "loopsync.serve",
)


def _imported_modules(source: str) -> set[str]:
    """Every module a source file imports, at any depth (a lazy import in a function counts)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from loopsync import store` imports loopsync.store.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_cli_source_imports_neither_the_store_nor_the_reconciler():
    leaks = sorted(m for m in _imported_modules(CLI_SOURCE) if _under(m, BEHIND_SERVICE))
    assert not leaks, f"cli.py imports {leaks}: go through loopsync.service"


def _loaded_after(code: str, tmp_path: Path, *argv: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the loopsync and third-party modules it loaded."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "sys.__stdout__.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg"), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env, timeout=60)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("MODULES ")]
    assert marker, proc.stdout + proc.stderr
    return json.loads(marker[-1][len("MODULES "):])


def test_importing_the_cli_does_not_load_the_store_or_the_reconciler(tmp_path):
    loaded = _loaded_after("import loopsync.cli", tmp_path)
    assert not [m for m in loaded if _under(m, BEHIND_SERVICE + HEAVY)]


# The exit code is checked too: a command that failed early would load nothing and prove nothing.
RUN = "from loopsync.cli import main\nrc = main(sys.argv[1:])\nassert rc == 0, rc"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["status"], ["status", "--json"]], ids=" ".join)
def test_quick_commands_load_no_heavy_module(tmp_path, argv):
    db = ["--db", str(tmp_path / "absent.db")] if argv[0] == "status" else []
    loaded = _loaded_after(RUN, tmp_path, *argv, *db)
    heavy = [m for m in loaded if _under(m, HEAVY)]
    assert not heavy, f"`loopsync {' '.join(argv)}` imported {sorted({m.split('.')[0] for m in heavy})}"
    # Nothing to read (no state file): not even the state file's modules.
    assert not [m for m in loaded if _under(m, ("sqlite_utils", "loopsync.store"))]


def test_status_of_an_existing_state_file_loads_no_heavy_module(tmp_path):
    db = tmp_path / "state.db"
    service.open_store(db).close()
    loaded = _loaded_after(RUN, tmp_path, "status", "--db", str(db))
    assert "loopsync.store" in loaded, "the state file was not read: the check proves nothing"
    assert not [m for m in loaded if _under(m, HEAVY)]


@pytest.mark.parametrize(
    "args",
    [
        ["config", "set", "note_label", "x"],
        ["config", "set", "no_such_setting", "x"],  # fails after opening the file
        ["config", "list"],  # read-only
        ["status"],
        ["scan"],  # not connected: fails before any API call
    ],
    ids=" ".join,
)
def test_the_state_file_is_closed_however_the_command_ends(cli, db, monkeypatch, args):
    service.open_store(db).close()
    opened = []
    real_open = service.open_store

    def tracking(*a, **kw):
        opened.append(real_open(*a, **kw))
        return opened[-1]

    monkeypatch.setattr(service, "open_store", tracking)
    cli([*args, "--db", str(db)])
    assert opened, "the command did not open the state file"
    for store in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            store.db.conn.execute("SELECT 1")

"""How long loopsync takes to start, against the floor of importing Typer itself.

Cron runs `loopsync scan` every few minutes and support types `loopsync status`
by hand: neither should pay for graphql-core (the sandbox's schema engine),
requests or the reconciler before it needs them. For each command this runs a
fresh interpreter several times, takes the median wall time, and reports it as
a multiple of `python -c "import typer"` in the same interpreter. It also lists
which heavy modules each command imported (`-X importtime` is not needed: we
ask `sys.modules` at exit).

Usage: `python benchmarks/startup.py [--runs N]`; exits 1 when `--help` costs
more than `--max-ratio` (default 2.0) times the Typer floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HEAVY = (
    "graphql", "requests", "sqlite_utils", "loopsync.reconcile", "loopsync.sandbox", "tenacity",
    "starlette", "uvicorn", "prometheus_client", "loopsync.serve",
)

# Runs the CLI in-process and reports, at exit, which heavy modules it loaded.
PROBE = """
import atexit, json, sys
HEAVY = {heavy!r}
def _report():
    loaded = sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in sys.modules))
    sys.__stderr__.write("LOADED " + json.dumps(loaded) + "\\n")
atexit.register(_report)
from loopsync.cli import main
sys.exit(main({argv!r}))
"""


def _time(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, list[str]]:
    samples, loaded = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        samples.append(time.perf_counter() - start)
        for line in proc.stderr.splitlines():
            if line.startswith("LOADED "):
                loaded = json.loads(line[len("LOADED "):])
    return statistics.median(samples), loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--max-ratio", type=float, default=2.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LOOPSYNC_DB": os.path.join(tmp, "absent.db"), "NO_COLOR": "1"}
        floor, _ = _time([sys.executable, "-c", "import typer"], args.runs, env)
        rows = []
        for argv in (["--help"], ["--version"], ["status"], ["scan", "--help"]):
            probe = PROBE.format(heavy=HEAVY, argv=argv)
            seconds, loaded = _time([sys.executable, "-c", probe], args.runs, env)
            rows.append({"command": "loopsync " + " ".join(argv), "seconds": round(seconds, 3),
                         "ratio": round(seconds / floor, 2), "heavy_imports": loaded})

    if args.json:
        print(json.dumps({"typer_floor_seconds": round(floor, 3), "commands": rows}, indent=2))
    else:
        print(f"python -c 'import typer': {floor * 1000:.0f} ms (median of {args.runs})")
        print(f"{'command':<24} {'ms':>6} {'× typer':>8}  heavy modules imported")
        for r in rows:
            print(f"{r['command']:<24} {r['seconds'] * 1000:>6.0f} {r['ratio']:>8.2f}  {', '.join(r['heavy_imports']) or '-'}")
    help_row = rows[0]
    return 0 if help_row["ratio"] <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())

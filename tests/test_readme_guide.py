"""The README's "Using it on your store" guide, followed as written by a new user, against the sandbox.

Every ```sh block of the guide runs, in order, in one bash shell (so its `export` and
`read` lines work as they would at a terminal), with the installed `loopsync` entry
point on PATH, in an empty directory; every command must exit 0. The only changes are
the placeholders the guide names (the shop, the state file, the port, the proxy's
address). The sandbox's credentials come from the environment, as `connect` reads them
in a script, except the webhook secret, which is typed into the guide's `read` line.

Two things a terminal user does by hand the test does for them: `loopsync serve` runs
in the foreground until Ctrl-C, so here it is started in the background, waited for,
and sent SIGTERM after the guide's last command (it must exit 0); and the ```crontab
line's command runs as cron would, with an empty environment, and must print nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.checks import DEMO_SECRETS
from support.sandbox import sandbox_env

README = (Path(__file__).parent.parent / "README.md").read_text()
GUIDE = README[README.index("## Using it on your store"):README.index("\n## Running it")]
BIN = Path(sys.executable).parent

# What the guide's intro says the test replaces; each value is filled in per run.
PLACEHOLDERS = ("your-store.myshopify.com", "/var/lib/loopsync/state.db", "8080", "https://hooks.example.com")

# The scopes step 1 tells the merchant to grant, from its table.
STEP_1 = GUIDE[GUIDE.index("### 1. "):GUIDE.index("### 2. ")]
GUIDE_SCOPES = re.findall(r"^\| `(\w+)` \|", STEP_1, flags=re.MULTILINE)

# The steps a new user cannot skip: if one is renamed away, the guide no longer guides.
EXPECTED = ("loopsync connect", "loopsync scan --dry-run", "loopsync explain ", "loopsync scan",
            "loopsync status", "loopsync serve ", "curl ", "loopsync webhooks install --url ")


def guide_commands(guide: str = GUIDE) -> list[tuple[str, str]]:
    """(kind, command) for every command line of the guide's ```sh and ```crontab blocks, in order."""
    commands = []
    for indent, kind, body in re.findall(r"^( *)```(sh|crontab)\n(.*?)^ *```$", guide, flags=re.MULTILINE | re.DOTALL):
        text = "\n".join(line[len(indent):] for line in body.splitlines())
        for line in text.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append((kind, line.strip()))
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_guide_names_its_placeholders_and_its_steps():
    intro = GUIDE.split("\n### ", 1)[0]
    text = "\n".join(command for _, command in guide_commands())
    for placeholder in PLACEHOLDERS:
        assert f"`{placeholder}`" in intro, f"the guide's intro does not name the placeholder {placeholder}"
        assert placeholder in text, f"no command of the guide uses the placeholder {placeholder}"
    commands = [command for _, command in guide_commands()]
    for step in EXPECTED:
        assert any(c.startswith(step) for c in commands), f"the guide has no `{step.strip()}` command"


def script_for(commands: list[tuple[str, str]], values: dict[str, str], port: int) -> tuple[str, list[str]]:
    """The bash script that runs the guide, and the command each numbered result belongs to."""
    lines, ran = [], []
    serving = False
    for kind, command in commands:
        for placeholder, value in values.items():
            command = command.replace(placeholder, value)
        n = len(ran)
        ran.append(command)
        if kind == "crontab":
            # Cron's five time fields, then the command, run with nothing of this shell's environment.
            job = command.split(None, 5)[5]
            run = f'env -i PATH="$PATH" HOME="$HOME" sh -c {shlex.quote(job)}'
            lines.append(f'{{ {run} ; }} >out.{n} 2>err.{n}; echo "{n} $?" >>results')
        elif command.startswith("loopsync serve "):
            serving = True
            lines += [
                f"{command} >out.{n} 2>err.{n} & serve_pid=$!",
                # Where a user waits for its first log line before opening the second shell.
                f"for _ in $(seq 400); do grep -q 'listening on' err.{n} && break; kill -0 $serve_pid || break; sleep 0.05; done",
                f'echo "{n} started" >>results',
            ]
        else:
            lines.append(f'{{ {command} ; }} >out.{n} 2>err.{n}; echo "{n} $?" >>results')
    if serving:
        lines.append('kill -TERM "$serve_pid"; wait "$serve_pid"; echo "serve $?" >>results')
    return "\n".join(lines) + "\n", ran


def grant(sandbox, scopes: list[str]) -> None:
    app = next(a for a in sandbox.world.apps.values() if a.title == "loopsync")
    with sandbox.world.lock:
        app.scopes = list(scopes)


def implied(scope: str, scopes: list[str]) -> bool:
    """Shopify's write_X scope includes read_X."""
    return scope.startswith("read_") and scope.replace("read_", "write_", 1) in scopes


@pytest.mark.parametrize("scope", [s for s in GUIDE_SCOPES if not implied(s, GUIDE_SCOPES)])
def test_every_scope_the_guide_asks_for_is_needed(cli, sandbox, db, scope):
    # "Nothing more": without any one of them (bar a read scope its write scope includes), connect refuses.
    assert {"write_orders", "read_products", "write_merchant_managed_fulfillment_orders"} <= set(GUIDE_SCOPES)
    grant(sandbox, [s for s in GUIDE_SCOPES if s != scope])
    result = cli(["connect", "--db", str(db)], env=sandbox_env(sandbox))
    assert result.code == 4 and scope in result.err, result.output


@pytest.fixture
def run_guide(sandbox, tmp_path):
    assert (BIN / "loopsync").exists(), f"no installed loopsync entry point in {BIN}"
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    values = {
        "your-store.myshopify.com": sandbox.credentials["shop_domain"],
        "/var/lib/loopsync/state.db": str(tmp_path / "state" / "state.db"),
        "https://hooks.example.com": f"http://127.0.0.1:{port}",
        "8080": str(port),
    }
    (tmp_path / "state").mkdir()
    # The app has exactly the scopes step 1 lists: enough for every later step, webhooks included.
    grant(sandbox, GUIDE_SCOPES)
    secrets = sandbox_env(sandbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"))
    # The shop and the webhook secret are the guide's to give; the rest a script takes from its environment.
    env.update({k: v for k, v in secrets.items() if k not in ("LOOPSYNC_SHOP", "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET")})

    def run(commands=None):
        script, ran = script_for(commands or guide_commands(), values, port)
        (home / "guide.sh").write_text(script)
        proc = subprocess.Popen(
            ["bash", str(home / "guide.sh")], cwd=home, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            # What the user types at the guide's `read` prompt: the app's secret.
            _, stderr = proc.communicate(secrets["LOOPSYNC_SHOPIFY_WEBHOOK_SECRET"] + "\n", timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        results = dict(line.split() for line in (home / "results").read_text().splitlines())

        def output(n: int) -> tuple[str, str]:
            return (home / f"out.{n}").read_text(), (home / f"err.{n}").read_text()

        return ran, results, output, stderr

    return run


def test_every_command_of_the_guide_works_as_written(run_guide, probe):
    ran, results, output, stderr = run_guide()

    for n, command in enumerate(ran):
        out, err = output(n)
        assert results.get(str(n)) in ("0", "started"), f"`{command}` exited {results.get(str(n))}:\n{out}\n{err}\n{stderr}"
        for secret in DEMO_SECRETS:
            assert secret not in out + err, f"`{command}` printed a secret: {secret[:6]}…"

    def out_of(prefix: str, *, both: bool = False) -> str:
        out, err = output(next(n for n, c in enumerate(ran) if c.startswith(prefix)))
        return out + err if both else out

    assert results.get("serve") == "0", f"serve did not exit 0 on SIGTERM:\n{out_of('loopsync serve ', both=True)}"

    # What the guide says each step shows, as the sandbox's demo store answers it.
    summary = re.search(r"`(Dry run: [^`]+)`", GUIDE.replace("\n", " ")).group(1)
    assert summary in " ".join(out_of("loopsync scan --dry-run", both=True).split())
    assert "EXC-1086-1" in out_of("loopsync explain ")
    assert probe.our_holds("EXC-1086-1"), "the guide's scan held nothing"
    [cron] = [n for n, c in enumerate(ran) if re.match(r"[*/0-9]+ ", c)]
    assert output(cron) == ("", ""), f"the cron line is not quiet: {output(cron)}"
    assert '"status": "ok"' in out_of("curl ").replace('":"', '": "')
    installed = out_of("loopsync webhooks install ").splitlines()
    assert len(installed) == 5 and all("created" in line.split("\t") for line in installed), installed
    assert out_of("loopsync webhooks list").count("/webhooks/shopify") == 5


def test_a_broken_command_in_the_guide_fails_it(run_guide):
    # The run above must not pass whatever the guide says: a misspelt command exits non-zero there.
    commands = guide_commands()
    n = next(i for i, (_, c) in enumerate(commands) if c.startswith("loopsync explain "))
    ran, results, output, _ = run_guide([*commands[:n], ("sh", commands[n][1].replace("explain", "explian", 1))])
    assert results[str(n)] == "2", output(n)


def test_troubleshooting_names_every_pending_reason_the_code_gives():
    # A new reason in the code with no row here leaves support guessing: the table must follow the code.
    from loopsync import guard
    from loopsync.reconcile import plan

    src = Path(plan.__file__).parent.parent
    texts = {guard.GIVE_UP, plan.NO_FULFILLMENT_ORDER_YET}
    for path in [*sorted((src / "reconcile").glob("*.py")), src / "status.py"]:
        code = path.read_text()
        # The fixed start of each reason: what comes before its first interpolated value.
        texts |= set(re.findall(r'\.pending = f?"([^"{]+)', code))
        texts |= set(re.findall(r'^\s+(?:return )?f?"(Loop return [^"{]+)', code, flags=re.MULTILINE))
    assert len(texts) >= 13, texts
    section = README[README.index("### Troubleshooting"):README.index("\n## ", README.index("### Troubleshooting"))]
    missing = sorted(t for t in texts if t.strip() not in section)
    assert not missing, f"Troubleshooting does not name these pending reasons: {missing}"

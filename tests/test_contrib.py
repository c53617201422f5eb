"""The scheduling examples in contrib/ are checked, not only shown: the systemd units pass
`systemd-analyze verify`, the cron line pings its healthcheck only when the scan exits 0, and the
Kubernetes manifests parse and run `loopsync scan --db …` and `loopsync serve` on one volume."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
UNITS = sorted((CONTRIB / "systemd").iterdir())
INSTALLED_AT = "/usr/local/bin/loopsync"
HARDENING = ("DynamicUser=yes", "User=loopsync", "StateDirectory=loopsync", "ProtectSystem=strict",
             "NoNewPrivileges=yes", "ProtectHome=yes", "PrivateTmp=yes")


def test_the_three_units_are_there():
    assert [u.name for u in UNITS] == ["loopsync-scan.service", "loopsync-scan.timer", "loopsync-serve.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed "
                    "(.ci/run installs the systemd package; this machine has none)")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart's program exists: point it at this checkout's loopsync, and only that.
    loopsync = Path(sys.executable).with_name("loopsync")
    assert loopsync.exists()
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, str(loopsync)))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True, text=True, timeout=60,
    )

    # A misspelt or invalid setting is only a warning on stderr (exit 0): none is allowed.
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


@pytest.mark.parametrize("name", ["loopsync-scan.service", "loopsync-serve.service"])
def test_each_service_is_hardened_and_shares_the_state_directory(name):
    lines = (CONTRIB / "systemd" / name).read_text().splitlines()
    for setting in HARDENING:
        assert setting in lines, f"{name} lacks {setting}"
    assert "Environment=LOOPSYNC_DB=/var/lib/loopsync/state.db" in lines
    assert not any(line.startswith("EnvironmentFile") for line in lines)


def test_the_units_run_scan_and_serve():
    scan = (CONTRIB / "systemd" / "loopsync-scan.service").read_text()
    serve = (CONTRIB / "systemd" / "loopsync-serve.service").read_text()
    timer = (CONTRIB / "systemd" / "loopsync-scan.timer").read_text()
    assert f"ExecStart={INSTALLED_AT} --log-format json scan --db /var/lib/loopsync/state.db" in scan
    assert f"ExecStart={INSTALLED_AT} --log-format json serve --host 127.0.0.1 --port 8080" in serve
    assert "OnCalendar=*:0/5" in timer and "Persistent=true" in timer


def _cron_command() -> str:
    [line] = [
        line for line in (CONTRIB / "cron" / "loopsync").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    fields = line.split(None, 6)
    assert fields[:5] == ["*/5", "*", "*", "*", "*"] and fields[5] == "loopsync"  # /etc/cron.d: a user field
    return fields[6]


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(("scan_exit", "pinged"), [(0, True), (1, False), (5, False)])
def test_the_cron_line_pings_its_healthcheck_only_after_a_clean_scan(tmp_path, scan_exit, pinged):
    command = _cron_command()
    assert command.startswith("loopsync scan --db /var/lib/loopsync/state.db && curl ")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    _fake(bin_dir, "loopsync", f'echo "loopsync $*" >> {log}; exit {scan_exit}')
    _fake(bin_dir, "curl", f'echo "curl $*" >> {log}')

    subprocess.run(["/bin/sh", "-c", command], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30, check=False)

    calls = log.read_text().splitlines()
    assert calls[0] == "loopsync scan --db /var/lib/loopsync/state.db"
    assert any(c.startswith("curl ") and "hc-ping.com" in c for c in calls) is pinged


def test_the_kubernetes_example_parses_and_names_its_image_and_commands():
    docs = list(yaml.safe_load_all((CONTRIB / "kubernetes" / "loopsync.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"PersistentVolumeClaim", "CronJob", "Deployment"}
    claim = by_kind["PersistentVolumeClaim"]["metadata"]["name"]

    cron = by_kind["CronJob"]["spec"]
    assert cron["schedule"] == "*/5 * * * *" and cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]["template"]["spec"]
    [scan] = job["containers"]
    deploy = by_kind["Deployment"]["spec"]
    assert deploy["replicas"] == 1
    [serve] = deploy["template"]["spec"]["containers"]

    assert scan["image"] == serve["image"] == "registry.example.com/loopsync:latest"
    assert scan["command"] == ["loopsync", "--log-format", "json", "scan", "--db", "/data/state.db"]
    assert serve["command"][:4] == ["loopsync", "--log-format", "json", "serve"]
    assert serve["command"][4:6] == ["--db", "/data/state.db"]
    # One state file per store: both mount the same claim at the path their --db names.
    for container, spec in ((scan, job), (serve, deploy["template"]["spec"])):
        [mount] = container["volumeMounts"]
        [volume] = spec["volumes"]
        assert (mount["mountPath"], volume["persistentVolumeClaim"]["claimName"]) == ("/data", claim)
        assert spec["securityContext"]["runAsNonRoot"] is True

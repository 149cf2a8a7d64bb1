"""deploy/systemd/: a unit per Procfile process running its command as it is, hardened, with the
environment file and a restart policy; `systemd-analyze verify` on them where it is installed
(it is on this machine; the units were not booted under a running systemd here: docs/deploy.md)."""

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.procfile import ROOT, procfile

UNITS = ROOT / "deploy" / "systemd"
# A process with several instances is a template unit (vibebox-web@8000.service).
TEMPLATED = {"web", "worker"}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
}


def _unit_file(process: str) -> Path:
    return UNITS / (f"vibebox-{process}@.service" if process in TEMPLATED else f"vibebox-{process}.service")


def _read(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def _systemd_unescape(text: str) -> str:
    """What the service's process gets: systemd expands %-specifiers and $VAR itself; %% and $$
    are a literal % and $."""
    return text.replace("%%", "\0").replace("$$", "$").replace("\0", "%")


def _exec_start(unit: configparser.RawConfigParser) -> str:
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, argv
    return _systemd_unescape(argv[2])


def test_every_procfile_process_has_a_unit_running_its_command():
    for process, command in procfile().items():
        path = _unit_file(process)
        assert path.exists(), f"no unit for the Procfile's {process}"
        unit = _read(path)
        assert _exec_start(unit) == command, process
        service = unit["Service"]
        assert service["WorkingDirectory"] == "/opt/vibebox"  # where .venv/bin/... resolves
        assert service["EnvironmentFile"] == "/etc/vibebox/vibebox.env"
        assert service["Restart"] == "always" and service["RestartSec"]
        assert service["User"] == "vibebox"
        for key, value in HARDENING.items():
            assert service.get(key) == value, (process, key)
        assert unit["Install"]["WantedBy"] == "vibebox.target"
        assert "vibebox-setup.service" in unit["Unit"]["Requires"]
    # Unescaped, no specifier or variable of systemd's is left in a command (a lone % or $ would be
    # expanded by systemd, e.g. Celery's %h into the user's home directory).
    for path in UNITS.glob("vibebox-*.service"):
        exec_start = _read(path)["Service"]["ExecStart"]
        if exec_start.startswith("/bin/sh -c"):
            stripped = exec_start.replace("%%", "").replace("$$", "")
            assert "%" not in stripped.replace("%i", "") and "$" not in stripped, path.name


def test_instances_are_the_ports_and_the_target_starts_them_all():
    for templated in TEMPLATED:  # the instance is the port (web) or the slot's port (the Celery node's name)
        assert "\nEnvironment=VIBEBOX_PORT=%i\n" in _unit_file(templated).read_text()
    target = (UNITS / "vibebox.target").read_text()
    for process in procfile():
        name = f"vibebox-{process}@" if process in TEMPLATED else f"vibebox-{process}.service"
        assert name in target, process
    # The web instances are nginx's upstream servers.
    nginx = (ROOT / "deploy" / "nginx" / "vibebox.conf").read_text()
    for port in ("8000", "8010"):
        assert f"vibebox-web@{port}.service" in target and f"server 127.0.0.1:{port} " in nginx
    # Beat alone has no capability: it installs no firewall rule.
    beat = _read(UNITS / "vibebox-beat.service")["Service"]
    assert beat["CapabilityBoundingSet"] == "" and "AmbientCapabilities" not in beat


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    """Every unit (templates as an instance), with no warning: systemd ignores a bad line with a
    warning, so a clean exit alone proves little. The setup unit's interpreter is pointed at this
    checkout's virtualenv (verify checks that ExecStart's program exists)."""
    names = []
    for path in UNITS.iterdir():
        text = path.read_text().replace("/opt/vibebox/.venv/", f"{ROOT}/.venv/")
        name = path.name.replace("@.service", "@8000.service")
        (tmp_path / path.name).write_text(text)
        (tmp_path / name).write_text(text)
        names.append(name)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *sorted(set(names))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr

"""systemd itself reads the units in deploy/: `systemd-analyze verify` in a root where the paths they name exist."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ["ticketd.service", "ticketd-worker@.service"]
# The targets the units are ordered after and wanted by (multi-user.target, network-online.target, ...).
SYSTEMD_UNITS = Path("/usr/lib/systemd/system")
# systemd-analyze security's overall exposure, in its own tenths (0 to 100, shown as 0.0 to 10.0): 1.8 for both
# units, most of it the network a mail daemon needs; 6.6 before the system call filter, the empty capability
# bounding set and the rest of the sandbox.
EXPOSURE_AT_MOST = 20
# systemd.service(5): the keys whose value is a command line; verify checks that each command is executable.
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost")


def _analyze() -> str:
    """The systemd-analyze program; scripts/test installs it (Debian's systemd package) when run as root."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is not installed: install systemd (apt-get install systemd); "
                    "scripts/test does it when run as root")
    return found


def _commands(text: str) -> list[str]:
    """The programs a unit's Exec*= lines run, without systemd's prefixes (-, @, :, +, !)."""
    commands = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in EXEC_KEYS and value.strip():
            commands.append(shlex.split(value)[0].lstrip("-@:+!"))
    return commands


def _install(root: Path, name: str, text: str) -> Path:
    """The unit in root's /etc/systemd/system, with the programs it runs: ticketd from this virtualenv, the rest
    (kill) from this machine. Returns its path as systemd sees it in root."""
    for command in _commands(text):
        source = Path(sys.executable).with_name("ticketd") if Path(command).name == "ticketd" else Path(command)
        assert source.exists(), f"{name} runs {command}, which this machine does not have"
        target = root / command.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    unit = root / "etc/systemd/system" / name
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(text)
    return Path("/") / unit.relative_to(root)


def _run(root: Path, path: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify on one unit file in root, without man pages or generators (none are in root)."""
    return subprocess.run([_analyze(), "verify", "--man=no", "--generators=no", f"--root={root}", str(path)],
                          capture_output=True, text=True, timeout=60)


def verify(root: Path, name: str, text: str) -> list[str]:
    """What `systemd-analyze verify` says about the unit (the lines naming it), with its exit code if not 0.

    An unknown key or a value systemd cannot parse is only a warning (exit
    code 0, the key ignored): the unit would run without that setting, so
    every line about the unit counts.
    """
    done = _run(root, _install(root, name, text))
    stem = name.partition("@")[0].removesuffix(".service")
    said = [line for line in (done.stdout + done.stderr).splitlines() if stem in line]
    if done.returncode != 0:
        said.append(f"exit code {done.returncode}: {done.stderr.strip()}")
    return said


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """An empty root but for systemd's own units, which the deployed units name."""
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(SYSTEMD_UNITS, root / SYSTEMD_UNITS.relative_to("/"), symlinks=True)
    (root / "lib").symlink_to("usr/lib")   # merged /usr, as Debian and systemd's own paths expect
    return root


@pytest.mark.parametrize("name", UNITS)
def test_systemd_finds_no_mistake_in_the_unit(root, name):
    assert verify(root, name, (ROOT / "deploy" / name).read_text()) == []


@pytest.mark.parametrize("name", UNITS)
def test_a_misspelt_directive_is_found(root, name):
    text = (ROOT / "deploy" / name).read_text()
    assert "\nProtectHome=" in text
    said = verify(root, name, text.replace("\nProtectHome=", "\nProtectHomme="))
    assert any("Unknown key" in line and "ProtectHomme" in line for line in said), said


@pytest.mark.parametrize("name", UNITS)
def test_a_command_that_is_not_there_is_found(root, name):
    path = _install(root, name, (ROOT / "deploy" / name).read_text())
    (root / "opt/ticketd/.venv/bin/ticketd").unlink()
    try:
        done = _run(root, path)
    finally:
        _install(root, name, (ROOT / "deploy" / name).read_text())
    assert done.returncode != 0 and "/opt/ticketd/.venv/bin/ticketd is not executable" in done.stderr, done.stderr


@pytest.mark.parametrize("name", UNITS)
def test_the_sandbox_leaves_little_exposed(root, name):
    path = _install(root, name, (ROOT / "deploy" / name).read_text())
    done = subprocess.run([_analyze(), "security", "--offline=yes", f"--threshold={EXPOSURE_AT_MOST}",
                           f"--root={root}", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

"""``ccgate service``: each platform's definition rendered and checked (systemd-analyze verify for
the unit; plistlib and the Task Scheduler schema's shape for the others), install / uninstall /
status against a recording runner with HOME and XDG dirs in tmp: the real user's services are
never touched."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ccgate.cli.main import main
from ccgate.cli.service import serve_argv
from ccgate.service import LABEL, Platform, ServiceError, ServiceManager
from tests.observe.tools import need

TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


class Recorder:
    """Stands in for the service manager's commands: records them, answers as told."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None) -> None:
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        self.commands.append(argv)
        return self.answers.get(" ".join(argv), (0, ""))


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
            "LOCALAPPDATA": str(tmp_path / "home" / "AppData" / "Local"), "USERNAME": "dev",
            "USERDOMAIN": "WORK"}


def _config(tmp_path: Path) -> Path:
    # A path with a space, a % and a $: quoting matters in every format.
    path = tmp_path / "my conf %h $HOME" / "ccgate.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("server:\n  port: 4545\n")
    return path


@pytest.mark.lab
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    recorder = Recorder()
    manager = ServiceManager(Platform.LINUX, _env(tmp_path), recorder)
    done = manager.install(serve_argv(_config(tmp_path)), start=False)
    unit = manager.definition_path()
    assert unit == tmp_path / "home" / ".config" / "systemd" / "user" / "ccgate.service"
    assert recorder.commands == []  # --no-start: nothing asked of systemd
    assert done[-1].startswith("not started; to start it: systemctl --user daemon-reload")
    text = unit.read_text()
    assert "ExecStart=" + sys.executable in text and "%%h $$HOME" in text
    assert "EnvironmentFile=-" + str(tmp_path / "home" / ".config" / "ccgate" / "ccgate.env") in text
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path / "home"),
           "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config")}
    checked = subprocess.run([analyze, "--user", "verify", str(unit)], capture_output=True, text=True,
                             env=env, timeout=60)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stderr
    # The validator is not a rubber stamp: a unit with a broken line fails it.
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("Restart=on-failure", "Restart=sometimes").replace(sys.executable, "python3x"))
    bad = subprocess.run([analyze, "--user", "verify", str(broken)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode != 0 and "sometimes" in bad.stderr


def test_systemd_install_uninstall_status(tmp_path: Path) -> None:
    recorder = Recorder({"systemctl --user is-active ccgate.service": (0, "active")})
    manager = ServiceManager(Platform.LINUX, _env(tmp_path), recorder)
    assert manager.status().installed is False
    argv = serve_argv(_config(tmp_path))
    manager.install(argv)
    assert recorder.commands == [["systemctl", "--user", "daemon-reload"],
                                 ["systemctl", "--user", "enable", "ccgate.service"],
                                 ["systemctl", "--user", "restart", "ccgate.service"]]
    status = manager.status()
    assert status.installed and status.running is True
    # A changed definition is kept as .bak before the new one replaces it.
    manager.install([*argv, "--port", "4646"], start=False)
    path = manager.definition_path()
    assert "--port 4646" in path.read_text() and "--port" not in path.with_name("ccgate.service.bak").read_text()
    recorder.commands.clear()
    manager.uninstall()
    assert not path.exists()
    assert recorder.commands == [["systemctl", "--user", "disable", "--now", "ccgate.service"],
                                 ["systemctl", "--user", "daemon-reload"]]


def test_a_failing_command_is_named(tmp_path: Path) -> None:
    recorder = Recorder({"systemctl --user daemon-reload": (1, "Failed to connect to bus")})
    manager = ServiceManager(Platform.LINUX, _env(tmp_path), recorder)
    with pytest.raises(ServiceError, match=r"systemctl --user daemon-reload failed \(exit 1\): Failed to connect"):
        manager.install(serve_argv(None))


def test_launchd_agent(tmp_path: Path) -> None:
    recorder = Recorder({f"launchctl print gui/501/{LABEL}": (0, "state = running")})
    manager = ServiceManager(Platform.MACOS, _env(tmp_path), recorder, uid=501)
    config = _config(tmp_path)
    manager.install(serve_argv(config))
    path = manager.definition_path()
    assert path == tmp_path / "home" / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == LABEL and agent["RunAtLoad"] is True
    assert agent["ProgramArguments"] == [sys.executable, "-m", "ccgate", "serve", "--config", str(config)]
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardErrorPath"] == str(tmp_path / "home" / "Library" / "Logs" / "ccgate" / "ccgate.log")
    assert (tmp_path / "home" / "Library" / "Logs" / "ccgate").is_dir()
    assert recorder.commands == [["launchctl", "bootstrap", "gui/501", str(path)]]
    assert manager.status().running is True
    recorder.commands.clear()
    manager.uninstall()
    assert recorder.commands == [["launchctl", "bootout", f"gui/501/{LABEL}"]] and not path.exists()


def test_windows_task(tmp_path: Path) -> None:
    recorder = Recorder()
    manager = ServiceManager(Platform.WINDOWS, _env(tmp_path), recorder)
    config = _config(tmp_path)
    manager.install([r"C:\Python 3\pythonw.exe", "-m", "ccgate", "serve", "--config", str(config)])
    path = manager.definition_path()
    raw = path.read_bytes()
    assert raw.startswith(b"\xff\xfe")  # UTF-16 with a BOM, as schtasks /XML takes it
    root = ET.fromstring(raw.decode("utf-16"))
    assert root.tag == f"{{{TASK_NS['t']}}}Task"
    assert root.findtext("t:Triggers/t:LogonTrigger/t:UserId", namespaces=TASK_NS) == r"WORK\dev"
    assert root.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS) == r"C:\Python 3\pythonw.exe"
    assert root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=TASK_NS) == (
        f'-m ccgate serve --config "{config}"')
    assert root.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=TASK_NS) == "PT0S"
    assert root.findtext("t:Settings/t:RestartOnFailure/t:Count", namespaces=TASK_NS) == "999"
    assert recorder.commands == [["schtasks", "/Create", "/TN", "ccgate", "/XML", str(path), "/F"],
                                 ["schtasks", "/Run", "/TN", "ccgate"]]
    recorder.commands.clear()
    manager.uninstall()
    assert [c[1] for c in recorder.commands] == ["/End", "/Delete"] and not path.exists()


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CCGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    assert main(["service", "install", "--print", "--platform", "macos", "--config", str(config)]) == 0
    assert plistlib.loads(capsys.readouterr().out.encode())["Label"] == LABEL
    assert main(["service", "install", "--platform", "macos"]) == 2
    assert "only renders" in capsys.readouterr().err
    assert main(["service", "install", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        assert main(["service", "status"]) == 3
        assert "not installed" in capsys.readouterr().out
        assert main(["service", "install", "--no-start", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "wrote " + str(tmp_path / "home" / ".config" / "systemd" / "user" / "ccgate.service") in out
        assert "not started" in out

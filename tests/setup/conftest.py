"""Every setup test runs in a throw-away HOME; the real ~/.claude* is checked untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccgate.cli.main import main

_SCRUB = (
    "CLAUDE_CONFIG_DIR",
    "CCGATE_CONFIG",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)


def _fingerprint(home: Path) -> dict[str, tuple[int, int] | None]:
    out: dict[str, tuple[int, int] | None] = {}
    for name in (".claude.json", ".claude/settings.json", ".claude/ccgate-backups"):
        try:
            st = (home / name).stat()
            out[name] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[name] = None
    return out


@pytest.fixture(scope="session", autouse=True)
def real_home_untouched() -> Iterator[None]:
    real = Path(os.path.expanduser("~"))
    before = _fingerprint(real)
    yield
    assert _fingerprint(real) == before, "a setup test touched the real ~/.claude*"


@dataclass
class Home:
    root: Path
    project: Path
    managed: Path

    @property
    def settings(self) -> Path:
        return self.root / ".claude" / "settings.json"

    @property
    def global_config(self) -> Path:
        return self.root / ".claude.json"

    @property
    def backups(self) -> Path:
        return self.root / ".claude" / "ccgate-backups"

    def write_settings(self, text: str | bytes) -> None:
        self.settings.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        self.settings.write_bytes(data)

    def snapshot(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for path in (self.settings, self.global_config):
            out[str(path)] = path.read_bytes() if path.exists() else None
        out["backups"] = b"yes" if self.backups.exists() else None
        return out


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "home"
    project = tmp_path / "project"
    managed = tmp_path / "managed"
    for d in (root, project, managed):
        d.mkdir()
    for var in _SCRUB:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(root))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / ".config"))
    monkeypatch.setenv("CCGATE_CLAUDE_MANAGED_DIR", str(managed))
    monkeypatch.chdir(project)
    return Home(root, project, managed)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*argv: str) -> Result:
        code = main(["setup", "claude-code", *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run

"""The command line as a new user meets it (issue 13, "CLI polish"): `serve` announces only a
bound socket and names who holds a busy port, bad --port values are refused like the config's,
a closed pipe is no traceback, --json everywhere, shell completion, the config's JSON Schema,
and an sdist without test-run state. Real processes: marked lab."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import jsonschema_rs
import pytest

from tests.gateway.harness import clean_env

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


def ccgate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccgate", *args], capture_output=True, text=True,
                          env=clean_env(env), cwd=cwd, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# serve -------------------------------------------------------------------------------------------


def test_a_busy_port_is_one_clear_sentence_naming_the_holder(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = ccgate("serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    if sys.platform == "linux":  # /proc names the process: this test's own
        assert f"pid {os.getpid()} (" in result.stderr
    assert "Traceback" not in result.stderr and "listening on" not in result.stderr
    assert "--port" in result.stderr


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_bad_port_values_are_refused_like_the_config_does(tmp_path: Path, port: str) -> None:
    result = ccgate("serve", "--port", port, cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --port: must be a port number from 1 to 65535 (as server.port)" in result.stderr
    assert "listening on" not in result.stderr


def test_listening_on_is_printed_only_once_the_port_accepts(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ccgate", "serve", "--port", str(port)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=clean_env(None), cwd=tmp_path)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert f"ccgate listening on http://127.0.0.1:{port}" in line
        # The very moment it says so, a connection is accepted (before, uvicorn had not bound yet).
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        proc.terminate()
        proc.wait(10)


# a closed pipe -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["keys", "list", "--json"], ["usage", "--json"]])
def test_a_reader_that_closes_the_pipe_gets_no_traceback(tmp_path: Path, command: list[str]) -> None:
    env = {"CCGATE_DB": str(tmp_path / "ccgate.db")}
    assert ccgate("keys", "create", "--name", "alice", env=env, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "ccgate", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(env), cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head` that has read enough, before ccgate writes
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 141, err  # as a process killed by SIGPIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err


# completion --------------------------------------------------------------------------------------


def test_bash_completion_is_a_valid_script_that_knows_every_command(tmp_path: Path) -> None:
    from ccgate.cli.main import SUBCOMMANDS

    result = ccgate("completion", "bash")
    assert result.returncode == 0, result.stderr
    script = tmp_path / "ccgate.bash"
    script.write_text(result.stdout)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert all(name in result.stdout for name in SUBCOMMANDS) and "--dangerously-allow-unauthenticated" in result.stdout
    zsh = ccgate("completion", "zsh")
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef ccgate")


# config schema -----------------------------------------------------------------------------------

VALID_CONFIGS = [
    "providers:\n  - preset: ollama\n",
    "server:\n  port: 4545\n  auth:\n    tokens: [env:TOK, {name: alice, token: env:ALICE}]\n"
    "providers:\n  - name: main\n    api_keys: [env:KEY]\n    proxy: off\n"
    "  - name: local\n    kind: openai-compatible\n    base_url: http://127.0.0.1:8000/v1\n"
    "    auth_header: none\n    quirks: {tool_name_max: 40}\n"
    "models:\n  - match: 'claude-*'\n    to: main\n    fallbacks: [local/qwen]\n    context_window: 32768\n",
]
INVALID_CONFIGS = [
    "providers:\n  - name: a\n    prxy: http://x\n",       # unknown key
    "providers:\n  - name: a\n    kind: openai\n",         # not a kind
    "server:\n  port: x\n",                                 # wrong type
    "providers:\n  - base_url: https://a.test\n",          # neither name nor preset
]


def test_config_schema_accepts_real_configs_and_rejects_what_load_config_rejects(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    result = ccgate("config", "schema")
    assert result.returncode == 0, result.stderr
    validator = jsonschema_rs.validator_for(json.loads(result.stdout))
    for text in VALID_CONFIGS:
        assert validator.is_valid(YAML(typ="safe", pure=True).load(text)), text
        (tmp_path / "ccgate.yaml").write_text(text)
        assert ccgate("config", "check", env={"TOK": "t" * 20, "ALICE": "a" * 20, "KEY": "k" * 20},
                      cwd=tmp_path).returncode == 0
    for text in INVALID_CONFIGS:
        assert not validator.is_valid(YAML(typ="safe", pure=True).load(text)), text


# --json ------------------------------------------------------------------------------------------


def test_config_check_json_ok_and_error(tmp_path: Path) -> None:
    (tmp_path / "ccgate.yaml").write_text("providers:\n  - name: main\n    api_keys: [env:KEY]\n")
    ok = ccgate("config", "check", "--json", env={"KEY": "sk-ant-secret-value-1234"}, cwd=tmp_path)
    assert ok.returncode == 0 and "sk-ant-secret-value-1234" not in ok.stdout
    data = json.loads(ok.stdout)
    assert data["ok"] is True and data["providers"][0] | {"proxy_reason": None} == {
        "name": "main", "kind": "anthropic", "base_url": "https://api.anthropic.com", "proxy": None,
        "proxy_reason": None, "keys": 1}
    bad = ccgate("config", "check", "--json", cwd=tmp_path)  # KEY is not set
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
    assert "KEY is not set" in json.loads(bad.stdout)["error"]


def test_keys_create_rotate_revoke_json(tmp_path: Path) -> None:
    env = {"CCGATE_DB": str(tmp_path / "ccgate.db")}
    created = ccgate("keys", "create", "--name", "ci", "--json", env=env)
    assert created.returncode == 0, created.stderr
    first = json.loads(created.stdout)
    assert first["key"]["name"] == "ci" and first["key"]["status"] == "active"
    assert first["secret"].startswith(first["key"]["prefix"])
    rotated = json.loads(ccgate("keys", "rotate", "ci", "--json", env=env).stdout)
    assert rotated["key"]["id"] == first["key"]["id"] and rotated["secret"] != first["secret"]
    revoked = json.loads(ccgate("keys", "revoke", "ci", "--json", env=env).stdout)
    assert revoked["key"]["status"] == "revoked" and "secret" not in revoked


def test_setup_json_dry_run_is_data_with_secrets_masked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = "ccgate-client-key-0123456789abcdef"
    result = ccgate("setup", "claude-code", "--gateway", "http://127.0.0.1:4545", "--key", key,
                    "--dry-run", "--json", env={"HOME": str(home)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # stdout is the JSON alone; the prose went to stderr
    assert data["written"] is False and data["exit_code"] == 0
    changes = {c["key"]: c for c in data["plan"]["changes"]}
    assert changes["env.ANTHROPIC_BASE_URL"]["new"] == "http://127.0.0.1:4545"
    assert key not in result.stdout and key not in result.stderr
    assert "Changes:" in result.stderr


# sdist -------------------------------------------------------------------------------------------


def test_sdist_ships_no_test_run_state(tmp_path: Path) -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    tree = tmp_path / "src-tree"
    for name in tracked.stdout.splitlines():
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    for junk in (".hypothesis/examples/ab/cd", ".tools/claude/x", ".pytest_cache/v/x"):
        (tree / junk).parent.mkdir(parents=True, exist_ok=True)
        (tree / junk).write_text("state of a test run")
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
                            str(tmp_path / "dist"), str(tree)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr + built.stdout
    (sdist,) = (tmp_path / "dist").glob("ccgate-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(n.endswith("src/ccgate/cli/main.py") for n in names)
    assert not [n for n in names if "/.hypothesis" in n or "/.tools" in n or "/.pytest_cache" in n]

"""The container recipe and the compose file, checked as far as this machine allows: it cannot
pull base images (no registry but PyPI/npm/Debian) and has no container daemon, so the image is
never built here. What is checked: the Containerfile's structure (stages, non-root user,
healthcheck, volumes, what it copies), the wheel its build stage makes (built here the same
way), its healthcheck command against a real gateway, the compose file's wiring, Prometheus's
config (``promtool check config``) and ccgate's config (loaded as ``ccgate serve`` would)."""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ccgate.config.load import load_config
from ccgate.config.model import DEFAULT_PORT
from tests.gateway.harness import Gateway
from tests.observe.tools import need

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
COMPOSE_DIR = ROOT / "deploy" / "compose"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in CONTAINERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(rest)))
    return env


def _healthcheck_cmd() -> list[str]:
    (rest,) = [r for s in _stages()[-1:] for k, r in s if k == "HEALTHCHECK"]
    cmd: list[str] = json.loads(rest.split(" CMD ", 1)[1])
    return cmd


def test_containerfile_structure() -> None:
    stages = _stages()
    assert len(stages) == 2, "multi-stage: a build stage and the runtime stage"
    build, final = stages
    assert build[0][1].endswith(" AS build") and final[0][1] == "${PYTHON_IMAGE}"
    keywords = [k for k, _ in final]
    # Non-root from the first command that runs as the service on.
    (user,) = [r for k, r in final if k == "USER"]
    uid, gid = user.split(":")
    assert uid not in ("root", "0") and gid not in ("root", "0")
    runs = " ".join(r for k, r in final if k == "RUN")
    assert f"useradd --system --uid {uid} --gid {gid}" in runs and f"groupadd --system --gid {gid}" in runs
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert json.loads(dict(final)["ENTRYPOINT"])[:2] == ["ccgate", "serve"]
    assert dict(final)["EXPOSE"] == str(DEFAULT_PORT)
    cmd = _healthcheck_cmd()
    assert f"http://127.0.0.1:{DEFAULT_PORT}/healthz" in cmd[-1]
    env = _env(final)
    volumes = json.loads(dict(final)["VOLUME"])
    assert str(PurePosixPath(env["CCGATE_DB"]).parent) in volumes  # the store outside the image
    assert env["CCGATE_CONFIG"].startswith("/etc/ccgate/")
    # Everything the build stage copies exists and passes .dockerignore.
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    for keyword, rest in build:
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert _kept(source, ignore), f"{source} is excluded by .dockerignore"


def _kept(path: str, patterns: list[str]) -> bool:
    kept = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path.rstrip("/"), pattern.lstrip("!").rstrip("/")):
            kept = negate
    return kept


@pytest.mark.lab
def test_the_wheel_the_build_stage_makes(tmp_path: Path) -> None:
    """``pip wheel .`` as in the build stage (without build isolation: hatchling comes from the
    test dependencies, so no index is asked)."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("ccgate-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = z.read(metadata).decode()
        (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "ccgate = ccgate.cli.main:main" in z.read(entry).decode()
    for module in ("ccgate/observe/otel.py", "ccgate/observe/tracing.py", "ccgate/service/units.py",
                   "ccgate/server/metrics.py"):
        assert module in names
    assert "Provides-Extra: otel" in meta
    assert any(line.startswith("Requires-Dist: opentelemetry-sdk") and "extra == 'otel'" in line
               for line in meta.splitlines())


@pytest.mark.lab
def test_healthcheck_command_against_a_real_gateway(tmp_path: Path) -> None:
    with Gateway(tmp_path, {"providers": [{"name": "anthropic", "base_url": "http://127.0.0.1:9"}]}) as gw:
        cmd = [sys.executable if c == "python" else c for c in _healthcheck_cmd()]
        probe = [*cmd[:-1], cmd[-1].replace(f"127.0.0.1:{DEFAULT_PORT}", f"127.0.0.1:{gw.port}")]
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0  # stopped: unhealthy


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return data


def _binds(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts: container path -> host path (relative to the compose file)."""
    out = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = source
    return out


def test_compose_wiring() -> None:
    compose = _compose()
    ccgate, prometheus = compose["services"]["ccgate"], compose["services"]["prometheus"]
    assert (COMPOSE_DIR / ccgate["build"]["context"] / ccgate["build"]["dockerfile"]).resolve() == CONTAINERFILE
    env = _env(_stages()[-1])
    binds = _binds(ccgate)
    assert (COMPOSE_DIR / binds[env["CCGATE_CONFIG"]]).is_file()
    assert f"{binds[env['CCGATE_CONFIG']]}:{env['CCGATE_CONFIG']}:ro" in ccgate["volumes"]  # read-only
    store = str(PurePosixPath(env["CCGATE_DB"]).parent)
    named = {v.split(":")[1]: v.split(":")[0] for v in ccgate["volumes"] if not v.startswith(".")}
    assert named[store] in compose["volumes"]  # the store on a named volume
    assert ccgate["healthcheck"]["test"] == ["CMD", *_healthcheck_cmd()]
    assert ccgate["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]
    assert prometheus["depends_on"]["ccgate"]["condition"] == "service_healthy"
    prom_binds = _binds(prometheus)
    for source in prom_binds.values():
        if not source.endswith("metrics-token"):  # the user writes that one
            assert (COMPOSE_DIR / source).is_file(), source
    config = yaml.safe_load((COMPOSE_DIR / prom_binds["/etc/prometheus/prometheus.yml"]).read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert (COMPOSE_DIR / prom_binds["/etc/prometheus/alerts.yml"]).resolve() == (
        ROOT / "deploy" / "prometheus" / "alerts.yml")
    (job,) = config["scrape_configs"]
    assert job["authorization"]["credentials_file"] in prom_binds
    assert job["static_configs"][0]["targets"] == [f"ccgate:{DEFAULT_PORT}"]
    # .env.example names every variable the config references.
    example = (COMPOSE_DIR / ".env.example").read_text()
    refs = _env_refs(yaml.safe_load((COMPOSE_DIR / "ccgate.yaml").read_text()))
    assert refs == {"CCGATE_CLIENT_TOKEN", "CCGATE_METRICS_TOKEN", "ANTHROPIC_API_KEY"}
    for ref in refs:
        assert f"\n{ref}=" in example, ref


def _env_refs(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node[4:]} if node.startswith("env:") else set()
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return set().union(*(_env_refs(n) for n in node)) if node else set()
    return set()


def test_compose_config_loads_as_serve_would() -> None:
    env = {"CCGATE_CLIENT_TOKEN": "client-token-0123456789", "CCGATE_METRICS_TOKEN": "metrics-token-0123456789",
           "ANTHROPIC_API_KEY": "sk-ant-api03-test"}
    loaded = load_config(str(COMPOSE_DIR / "ccgate.yaml"), env)
    assert loaded.config.server.host == "0.0.0.0" and loaded.config.log.format == "json"
    assert loaded.secrets.client_tokens and loaded.secrets.metrics_token is not None


@pytest.mark.lab
def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = need("promtool")
    text = (COMPOSE_DIR / "prometheus.yml").read_text()
    token = tmp_path / "token"
    token.write_text("metrics-token-0123456789")
    text = text.replace("/etc/prometheus/alerts.yml", str(ROOT / "deploy" / "prometheus" / "alerts.yml"))
    text = text.replace("/etc/prometheus/ccgate-metrics-token", str(token))
    (tmp_path / "prometheus.yml").write_text(text)
    done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    count = sum(len(group["rules"]) for group in rules)  # every rule of alerts.yml, wired in
    assert done.returncode == 0 and f"{count} rules found" in done.stdout, done.stdout + done.stderr

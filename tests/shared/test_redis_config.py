"""The ``redis:`` section: validated by ``config check`` (scheme, timeout, prefix, TLS files,
secret references) without connecting; the URL and password never in errors or output;
read at start (a reload reports a change as needing a restart); ``serve`` builds the backend
from it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ccgate.cli.config_cmd import check_json
from ccgate.cli.serve import describe, shared_backend
from ccgate.config.load import load_config
from ccgate.errors import ConfigError
from ccgate.server.runtime import restart_only_changes
from ccgate.shared.redis import RedisShared

SECRET_URL = "redis://:hunter2-redis-password@redis.internal:6380/2"


def load(tmp_path: Path, redis: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "ccgate.yaml"
    path.write_text(f"redis:\n{redis}")
    return load_config(str(path), env or {})


def test_a_url_from_the_environment_is_resolved_and_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load(tmp_path, "  url: env:REDIS_URL\n  password: env:REDIS_PASSWORD\n",
                  {"REDIS_URL": SECRET_URL, "REDIS_PASSWORD": "another-secret-value"})
    assert loaded.config.redis is not None and loaded.config.redis.timeout == 0.25
    assert loaded.config.redis.prefix == "ccgate:" and loaded.config.redis.on_failure.rate_limits == "open"
    assert loaded.secrets.redis_url is not None and loaded.secrets.redis_url.value == SECRET_URL
    shown = json.dumps(check_json(loaded)) + "\n".join(describe(loaded, "127.0.0.1", 4545))
    assert "hunter2" not in shown and "another-secret" not in shown and "redis.internal" not in shown
    assert "env:REDIS_URL" in shown
    assert "hunter2" not in repr(loaded.secrets)


def test_serve_builds_the_redis_backend_from_the_section(tmp_path: Path) -> None:
    loaded = load(tmp_path, "  url: env:REDIS_URL\n  password: env:P\n  timeout: 0.5\n  prefix: 'team-a:'\n",
                  {"REDIS_URL": "redis://127.0.0.1:1/0", "P": "pw-0123456789"})
    backend = shared_backend(loaded, {}, None)
    assert isinstance(backend, RedisShared)
    assert backend.options.password == "pw-0123456789" and backend.timeout == 0.5
    assert backend.options.prefix == "team-a:" and backend.options.ssl == {}
    assert shared_backend(load_config(None, {}), {}, None) is None  # no redis: this process only


@pytest.mark.parametrize(("section", "message"), [
    ("  url: http://redis.internal:6379\n", "must start with redis://"),
    ("  url: redis://h:6379\n  timeout: 0\n", "timeout must be more than 0"),
    ("  url: redis://h:6379\n  timeout: 11\n", "at most 10 seconds"),
    ("  url: redis://h:6379\n  prefix: 'a b'\n", "prefix must be"),
    ("  url: redis://h:6379\n  on_failure: {rate_limits: maybe}\n", "rate_limits"),
    ("  url: redis://h:6379\n  tls: {verify: false}\n", "TLS settings need a rediss:// URL"),
    ("  url: rediss://h:6379\n  tls: {ca_file: /nonexistent/ca.pem}\n", "file not found"),
    ("  url: env:NOT_SET\n", "NOT_SET is not set"),
    ("  url: redis://h:6379\n  password: env:NOT_SET\n", "redis.password"),
    ("  timeout: 1\n", "url"),
])
def test_config_check_refuses_a_bad_section_clearly(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, section)


def test_a_bad_scheme_from_a_reference_is_refused_without_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, "  url: env:REDIS_URL\n", {"REDIS_URL": "http://user:s3cret-pw@host/"})
    assert "s3cret" not in str(raised.value) and "env:REDIS_URL" in str(raised.value)


def test_rediss_passes_the_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    loaded = load(tmp_path, f"  url: rediss://h:6380/0\n  tls: {{ca_file: {ca}}}\n")
    backend = shared_backend(loaded, {}, None)
    assert isinstance(backend, RedisShared)
    assert backend.options.ssl == {"ssl_cert_reqs": "required", "ssl_check_hostname": True,
                                   "ssl_ca_certs": str(ca)}


def test_changing_redis_on_reload_needs_a_restart(tmp_path: Path) -> None:
    before = load(tmp_path, "  url: redis://h:6379/0\n").config
    after = load(tmp_path, "  url: redis://h:6379/1\n").config
    assert "redis" in restart_only_changes(before, after)
    assert restart_only_changes(before, before) == []


def test_config_check_command_shows_the_section_without_the_url(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ccgate.cli.config_cmd import _check

    path = tmp_path / "ccgate.yaml"
    path.write_text(f"redis:\n  url: '{SECRET_URL}'\n")
    assert _check(argparse.Namespace(config=str(path), json=False)) == 0
    out = capsys.readouterr().out
    assert "shared state: redis" in out and "hunter2" not in out and "redis.internal" not in out

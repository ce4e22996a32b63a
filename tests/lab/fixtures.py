"""pytest fixtures for the shared test lab (loaded via ``pytest_plugins``).

Every server listens on 127.0.0.1 on an OS-assigned port and is stopped at teardown.
A missing external tool (squid, danted, microsocks, claude) skips the test locally and fails
it under CI (``CI`` set), since ``scripts/install-test-deps`` must have installed it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.lab.certs import LabPKI
from tests.lab.claude_cli import claude_binary, claude_matrix
from tests.lab.fake_anthropic import FakeAnthropic
from tests.lab.postgres import PostgresServer, postgres_bindir
from tests.lab.redis_server import RedisServer
from tests.lab.scripted import ScriptedUpstream
from tests.lab.socks import DanteSocks, MicroSocks
from tests.lab.squid import SquidProxy


def _missing(what: str) -> None:
    msg = f"{what} not installed: run scripts/install-test-deps"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _need_binary(name: str) -> None:
    if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists():
        _missing(name)


# --- certificates ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lab_pki() -> LabPKI:
    """Session PKI: ``.ca`` (trusted), ``.interceptor_ca`` (untrusted), leaves ``.server``,
    ``.interceptor_server``, ``.expired``; ``server_context()``, ``client_context()``."""
    return LabPKI()


@pytest.fixture(scope="session")
def lab_certs_dir(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with lab-ca.pem, interceptor-ca.pem, server.{crt,key},
    interceptor.{crt,key}, expired.{crt,key} (and ``<stem>-ca.pem`` next to each leaf)."""
    d = tmp_path_factory.mktemp("lab-certs")
    lab_pki.write_ca(d, "lab-ca.pem")
    lab_pki.write_ca(d, "interceptor-ca.pem", ca=lab_pki.interceptor_ca)
    lab_pki.write_leaf(d, lab_pki.server, "server")
    lab_pki.write_leaf(d, lab_pki.interceptor_server, "interceptor")
    lab_pki.write_leaf(d, lab_pki.expired, "expired")
    return d


@pytest.fixture(scope="session")
def lab_ca_file(lab_certs_dir: Path) -> Path:
    """PEM of the trusted lab CA (for --ca-file, NODE_EXTRA_CA_CERTS, verify=...)."""
    return lab_certs_dir / "lab-ca.pem"


# --- fake Anthropic upstream ---------------------------------------------------------------
@pytest.fixture
def fake_anthropic_factory(lab_pki: LabPKI) -> Iterator[Callable[..., FakeAnthropic]]:
    """``make(*, leaf=None, tls=True, **kwargs) -> FakeAnthropic`` (started).

    ``leaf``: the trustme leaf to present (e.g. ``lab_pki.expired`` or
    ``lab_pki.interceptor_server``); ``tls=False`` gives a plain-HTTP-only server; other
    kwargs go to :class:`FakeAnthropic` (``expected_api_key``, ``accept_bearer``).
    """
    servers: list[FakeAnthropic] = []

    def make(*, leaf: trustme.LeafCert | None = None, tls: bool = True,
             **kwargs: Any) -> FakeAnthropic:
        ctx = lab_pki.server_context(leaf) if tls else None
        server = FakeAnthropic(ctx, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def fake_anthropic(fake_anthropic_factory: Callable[..., FakeAnthropic]) -> FakeAnthropic:
    """A started fake upstream: TLS at ``.url`` (lab CA) and plain HTTP at ``.http_url``;
    expects ``x-api-key: LAB_API_KEY``."""
    return fake_anthropic_factory()


# --- squid ---------------------------------------------------------------------------------
def _stop_all(proxies: list[SquidProxy]) -> None:
    """Squid needs ~2 s to exit after SIGTERM: signal them all first, then wait."""
    for proxy in proxies:
        if proxy.proc is not None and proxy.proc.poll() is None:
            proxy.proc.terminate()
    for proxy in proxies:
        proxy.stop()
        shutil.rmtree(proxy.workdir, ignore_errors=True)


@pytest.fixture
def squid_factory() -> Iterator[Callable[..., SquidProxy]]:
    """``make(mode="open"|"basic"|"deny"|"ntlm", **kwargs) -> SquidProxy`` (started, private
    to the test; ``username``, ``password``, ``deny_hosts`` may be given)."""
    _need_binary("squid")
    proxies: list[SquidProxy] = []

    def make(mode: str = "open", **kwargs: Any) -> SquidProxy:
        proxy = SquidProxy(mode=mode, **kwargs)
        proxies.append(proxy)
        return proxy.start()

    yield make
    _stop_all(proxies)


@pytest.fixture(scope="session")
def _squid_pool() -> Iterator[dict[str, SquidProxy]]:
    pool: dict[str, SquidProxy] = {}
    yield pool
    _stop_all(list(pool.values()))


def _shared_squid(pool: dict[str, SquidProxy], mode: str) -> SquidProxy:
    _need_binary("squid")
    if mode not in pool:
        pool[mode] = SquidProxy(mode=mode).start()
    return pool[mode]


@pytest.fixture(scope="session")
def squid_proxy(_squid_pool: dict[str, SquidProxy]) -> SquidProxy:
    """Open squid (session-shared): any CONNECT/GET from loopback is allowed."""
    return _shared_squid(_squid_pool, "open")


@pytest.fixture(scope="session")
def squid_auth_proxy(_squid_pool: dict[str, SquidProxy]) -> SquidProxy:
    """Squid requiring Basic auth (session-shared); ``.username``/``.password``,
    ``.url_with_auth()``."""
    return _shared_squid(_squid_pool, "basic")


@pytest.fixture(scope="session")
def squid_deny_proxy(_squid_pool: dict[str, SquidProxy]) -> SquidProxy:
    """Squid (session-shared) refusing api.anthropic.com and platform.claude.com with 403 +
    ``X-Squid-Error: ERR_ACCESS_DENIED 0``."""
    return _shared_squid(_squid_pool, "deny")


@pytest.fixture(scope="session")
def squid_ntlm_proxy(_squid_pool: dict[str, SquidProxy]) -> SquidProxy:
    """Squid (session-shared) offering only ``Proxy-Authenticate: NTLM``."""
    return _shared_squid(_squid_pool, "ntlm")


# --- SOCKS -----------------------------------------------------------------------------------
@pytest.fixture
def socks_proxy() -> Iterator[DanteSocks]:
    """dante SOCKS5, no auth: ``.url`` (socks5://), ``.url_remote_dns`` (socks5h://),
    ``.resolves_lab_hosts`` (api.anthropic.com → 127.0.0.1 for socks5h)."""
    _need_binary("danted")
    server = DanteSocks().start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def socks_auth_proxy() -> Iterator[MicroSocks]:
    """microsocks SOCKS5 with username/password: ``.url_with_auth(scheme="socks5")``."""
    _need_binary("microsocks")
    server = MicroSocks().start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


# --- Claude Code CLI -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """Path of the pinned native ``claude`` binary (see tests/lab/claude_cli.py)."""
    path = claude_binary()
    if path is None:
        _missing("Claude Code CLI")
    assert path is not None
    return path


@pytest.fixture(params=claude_matrix())
def claude_version_bin(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """``(version, binary)`` for each Claude Code version of the compatibility matrix (the
    pinned one and scripts/claude-matrix.txt, or $CCGATE_CLAUDE_MATRIX): a test that takes it
    runs once per version (docs/testing.md, "Claude Code versions")."""
    version: str = request.param
    path = claude_binary(version)
    if path is None:
        _missing(f"Claude Code CLI {version} (.tools/claude-{version})")
    assert path is not None
    return version, path


# --- scripted upstream ------------------------------------------------------------------------
@pytest.fixture
def scripted_upstream(lab_pki: LabPKI) -> Iterator[Callable[..., ScriptedUpstream]]:
    """``make(*actions, default=None, tls=False, bearer_keys=None, name="scripted")
    -> ScriptedUpstream`` (started; stopped at teardown). Call it twice for a primary and a
    fallback. Plain HTTP at ``.http_url`` always; with ``tls=True`` also TLS (lab CA leaf) at
    ``.https_url``, and ``.url`` is the TLS one. ``.openai_base_url`` is ``.url + "/v1"``.
    Actions and recorded requests: see tests/lab/scripted.py."""
    servers: list[ScriptedUpstream] = []

    def make(*actions: Any, default: Any = None, tls: bool = False,
             bearer_keys: Any = None, name: str = "scripted") -> ScriptedUpstream:
        ctx = lab_pki.server_context() if tls else None
        server = ScriptedUpstream(*actions, default=default, ssl_context=ctx,
                                  bearer_keys=bearer_keys, name=name).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# --- PostgreSQL (the store on store.url) ---------------------------------------------------
def _postgres_or_skip() -> Path:
    bindir = postgres_bindir()
    if bindir is None:
        _missing("postgresql (Debian package)")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        _missing("psycopg (the ccgate[postgres] extra)")
    assert bindir is not None
    return bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session (initdb into a temp dir, 127.0.0.1, free port). Tests
    take their own database from it (``pg_url``); never stop this one."""
    server = PostgresServer(_postgres_or_skip()).start()
    yield server
    server.close()


@pytest.fixture
def postgres_factory() -> Iterator[Callable[[], PostgresServer]]:
    """A PostgreSQL of the test's own, for tests that stop and start it."""
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = PostgresServer(_postgres_or_skip()).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL, as a URL with the password in it."""
    return postgres_server.url(postgres_server.create_database())
# --- redis ------------------------------------------------------------------------------------
@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 (OS-picked port, throwaway dir, no persistence),
    started; ``.stop()`` / ``.start()`` mid-test for an outage; stopped at teardown."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        _missing("redis-server")
    server = RedisServer().start()
    yield server
    server.close()

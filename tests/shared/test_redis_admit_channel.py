"""The admission channel (shared/redis_admit.py) against a scripted RESP server in this process,
for what a real Redis cannot be made to do on cue: a reply lost after the command arrived (it
must fail, never be sent twice), a server that reads and never answers (every admission fails
within the timeout, then fast during the backoff), NOSCRIPT forever. And the URL as redis-py
reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import hiredis
import pytest

from ccgate.shared import SharedUnavailable
from ccgate.shared.redis_admit import AdmitChannel, Endpoint, script_sha
from ccgate.shared.redis_scripts import ADMIT

ADMITTED = b"*7\r\n:1\r\n$9\r\n-1.000000\r\n$0\r\n\r\n:1\r\n$17\r\n1800000061.000000\r\n:0\r\n$17\r\n1800000000.000000\r\n"

# What the server does with one EVALSHA (by its number, from 0): reply bytes, None (say nothing)
# or "close" (drop the connection without answering).
Script = Callable[[int], bytes | str | None]


@dataclass
class FakeRedis:
    script: Script
    commands: list[list[bytes]] = field(default_factory=list)
    connections: int = 0
    evalshas: int = 0
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = hiredis.Reader()
        try:
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    self.commands.append(command)
                    answer = self.answer(command)
                    if answer == "close":
                        writer.close()
                        return
                    if isinstance(answer, bytes):
                        writer.write(answer)
        finally:
            writer.close()

    def answer(self, command: list[bytes]) -> bytes | str | None:
        name = command[0].upper()
        if name == b"SCRIPT":
            sha = script_sha(command[2].decode()).encode()
            return b"$40\r\n" + sha + b"\r\n"
        if name == b"EVALSHA":
            self.evalshas += 1
            return self.script(self.evalshas - 1)
        return b"+OK\r\n"


@pytest.fixture
async def fake() -> AsyncIterator[Callable[[Script], Awaitable[FakeRedis]]]:
    made: list[FakeRedis] = []

    async def start(script: Script) -> FakeRedis:
        server = FakeRedis(script)
        server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        made.append(server)
        return server

    yield start
    for server in made:
        assert server.server is not None
        server.server.close()


def channel_to(server: FakeRedis, timeout: float = 0.2) -> AdmitChannel:
    return AdmitChannel(Endpoint.from_url(f"redis://127.0.0.1:{server.port}/0"), ADMIT, timeout)


def admit(channel: AdmitChannel, key: str = "k") -> asyncio.Future[object]:
    return channel.call(channel.command((f"rl:{key}:r", f"rl:{key}:t"), (10, 0, "", 62000)))


async def test_a_lost_reply_fails_the_admission_and_is_never_sent_again(fake: Callable) -> None:
    server = await fake(lambda n: "close" if n == 0 else ADMITTED)
    channel = channel_to(server)
    try:
        with pytest.raises(SharedUnavailable, match="lost"):
            await admit(channel)
        assert not channel.ok  # lost with an admission in flight: unhealthy until a reply
        reply = await admit(channel)  # the next one connects again, at once
        assert channel.ok
        assert reply == [1, b"-1.000000", b"", 1, b"1800000061.000000", 0, b"1800000000.000000"]
        assert server.evalshas == 2 and server.connections == 2
    finally:
        await channel.close()


async def test_no_answer_fails_every_admission_within_the_timeout_then_fast_while_backing_off(
        fake: Callable) -> None:
    server = await fake(lambda n: None)
    channel = channel_to(server, timeout=0.2)
    try:
        # Which path failed them is in the message (the timeout sweep, then the backoff), so
        # nothing here depends on how fast this machine is.
        results = await asyncio.gather(*(admit(channel) for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, SharedUnavailable) for r in results)
        assert "within 0.2 s" in str(results[0]) and not channel.ok
        assert server.evalshas == 20  # all of them went out (in one write), none twice
        with pytest.raises(SharedUnavailable, match="reconnecting"):
            await admit(channel)  # during the backoff: no new connection, no wait
        assert server.connections == 1
        await asyncio.sleep(0.1)  # past the backoff: a new connection, which fails the same way
        with pytest.raises(SharedUnavailable):
            await admit(channel)
        assert server.connections == 2 and server.evalshas == 21
    finally:
        await channel.close()


async def test_noscript_is_loaded_and_resent_once_then_refused(fake: Callable) -> None:
    noscript = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
    server = await fake(lambda n: noscript if n in (0, 2, 3) else ADMITTED)
    channel = channel_to(server)
    try:
        assert (await admit(channel))[0] == 1  # NOSCRIPT, SCRIPT LOAD, the same EVALSHA again
        loads = [i for i, c in enumerate(server.commands) if c[0] == b"SCRIPT"]
        assert len(loads) == 2 and server.commands[loads[1] + 1][0] == b"EVALSHA"
        with pytest.raises(SharedUnavailable, match="NOSCRIPT"):  # twice: refused, not a loop
            await admit(channel)
        assert server.evalshas == 4
    finally:
        await channel.close()


async def test_an_admission_whose_request_went_away_is_not_sent(fake: Callable) -> None:
    server = await fake(lambda n: ADMITTED)
    channel = channel_to(server)
    try:
        await admit(channel)
        gone = admit(channel)
        gone.cancel()
        await admit(channel)
        assert server.evalshas == 2
    finally:
        await channel.close()


@pytest.mark.parametrize(("url", "password", "want"), [
    ("redis://h:6380/2", None, Endpoint("h", 6380, None, 2)),
    ("redis://h", "pw", Endpoint("h", 6379, None, 0, None, "pw")),
    ("redis://:url-pw@h/0", "setting-pw", Endpoint("h", 6379, None, 0, None, "setting-pw")),
    ("redis://:url-pw@h/0", None, Endpoint("h", 6379, None, 0, None, "url-pw")),
    ("redis://alice:a%40b@h/1?db=4", None, Endpoint("h", 6379, None, 4, "alice", "a@b")),
    ("unix:///run/redis.sock?db=5", None, Endpoint("localhost", 6379, "/run/redis.sock", 5)),
])
def test_the_url_is_read_as_redis_py_reads_it(url: str, password: str | None, want: Endpoint) -> None:
    assert Endpoint.from_url(url, password) == want


def test_handshake_authenticates_selects_and_names_the_connection() -> None:
    endpoint = Endpoint.from_url("redis://alice:pw@h/3")
    assert endpoint.handshake() == [
        b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$2\r\npw\r\n",
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n",
        b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$6\r\nccgate\r\n",
    ]
    assert Endpoint.from_url("redis://h/0").handshake()[0].startswith(b"*3\r\n$6\r\nCLIENT")
    assert "pw" not in repr(endpoint)


def test_rediss_takes_the_tls_options_and_the_urls_own() -> None:
    endpoint = Endpoint.from_url("rediss://h:6380/0?ssl_cert_reqs=none", None,
                                 {"ssl_cert_reqs": "required", "ssl_ca_certs": "/ca.pem"})
    assert endpoint.tls == {"ssl_cert_reqs": "none", "ssl_ca_certs": "/ca.pem"}
    assert Endpoint.from_url("redis://h:6380/0", None, {"ssl_cert_reqs": "required"}).tls is None

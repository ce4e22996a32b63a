"""What every bench module shares: where things are, the error type, loopback-only HTTP."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


T = TypeVar("T")


class BenchError(RuntimeError):
    """A bench step failed; the message says which and why."""


def or_explain(step: Callable[[], T], prog: str) -> T | None:
    """`step()`, or None once it failed with a BenchError, printed after `prog`."""
    try:
        return step()
    except BenchError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return None


def assert_loopback(url: str) -> None:
    """Refuse any URL whose host is not a literal 127.0.0.0/8 address."""
    host = urllib.request.urlparse(url).hostname or ""
    if not host.startswith("127."):
        raise BenchError(f"refusing non-loopback URL {url!r}")


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One loopback HTTP request; returns (status, body) for any status."""
    assert_loopback(url)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    # No proxy handler: a proxy variable in the environment must not route loopback traffic.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()

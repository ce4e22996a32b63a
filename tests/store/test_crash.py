"""SIGKILL mid-traffic: every key and usage row reported as committed is intact on reopen."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ccgate.store import KeyCache, SQLiteStore

pytestmark = pytest.mark.lab

WRITER = Path(__file__).with_name("crash_writer.py")
MIN_KEYS = 40
MIN_USAGE = 300


def run_and_kill(db: Path, tag: str) -> tuple[dict[str, str], set[str]]:
    """Start the writer, wait until it has reported enough commits, SIGKILL it while it is
    still writing, then collect every line it managed to report."""
    proc = subprocess.Popen([sys.executable, str(WRITER), str(db), tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    keys: dict[str, str] = {}
    usage: set[str] = set()

    def take(line: bytes) -> None:
        kind, _, rest = line.decode().strip().partition(" ")
        if kind == "key":
            key_id, digest_hex = rest.split()
            keys[key_id] = digest_hex
        elif kind == "usage":
            usage.add(rest)

    try:
        while len(keys) < MIN_KEYS or len(usage) < MIN_USAGE:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read().decode()[-2000:]}")
            take(line)
        os.kill(proc.pid, signal.SIGKILL)  # mid-traffic: it is creating keys and committing usage
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for line in proc.stdout.read().splitlines(keepends=True):  # reported before it died
        if line.endswith(b"\n"):
            take(line)
    proc.stdout.close()
    proc.stderr.close()
    return keys, usage


def test_committed_rows_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "ccgate.db"
    all_keys: dict[str, str] = {}
    all_usage: set[str] = set()
    for round_ in range(3):  # the next writer starts from the file the last one was killed on
        keys, usage = run_and_kill(db, f"round{round_}")
        all_keys.update(keys)
        all_usage |= usage

        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored_usage = {r[0] for r in conn.execute("SELECT request_id FROM usage")}
        finally:
            conn.close()
        assert all_usage <= stored_usage, f"lost {len(all_usage - stored_usage)} committed usage rows"

        store = SQLiteStore(db)
        try:
            stored = {k.id: k for k in store.list_keys()}
            missing = set(all_keys) - set(stored)
            assert not missing, f"lost {len(missing)} committed keys"
            for key_id, digest_hex in all_keys.items():
                key = stored[key_id]
                assert key.digest.hex() == digest_hex and key.models == ("claude-*",) and key.revoked_at is None
            cache = KeyCache(store)
            cache.reload()
            assert len(cache) == len(stored)
        finally:
            store.close()

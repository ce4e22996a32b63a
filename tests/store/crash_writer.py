"""Run by test_crash.py as a subprocess: write keys and usage through the store API until killed.

Every line on stdout is written only after the write it reports has returned, i.e. committed:
``key <id> <digest hex>`` after ``KeyManager.create`` returns, ``usage <request_id> ...`` from
``UsageRecorder``'s on_commit. Each line group goes out in one ``os.write`` below PIPE_BUF, so
lines from the two threads never interleave mid-line. No secret is ever printed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ccgate.store import KeyManager, SQLiteStore, UsageRecorder, UsageRow


def report(lines: Sequence[str]) -> None:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == 20:
            os.write(1, ("\n".join(chunk) + "\n").encode())
            chunk = []
    if chunk:
        os.write(1, ("\n".join(chunk) + "\n").encode())


def main(path: str, tag: str) -> None:
    store = SQLiteStore(Path(path))
    keys = KeyManager(store)
    recorder = UsageRecorder(
        store, batch_size=25, interval=0.005,
        on_commit=lambda batch: report([f"usage {row.request_id}" for row in batch]),
    )
    n = 0
    while True:  # until SIGKILL
        key, _secret = keys.create(f"{tag}-k{n}", models=["claude-*"], rpm=n + 1)
        report([f"key {key.id} {key.digest.hex()}"])
        for i in range(10):
            recorder.record(UsageRow(ts=time.time(), status=200, key_id=key.id, model="claude-sonnet",
                                     provider="anthropic", session_id=tag, request_id=f"{tag}-{n}-{i}",
                                     input_tokens=i, output_tokens=2 * i))
        n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

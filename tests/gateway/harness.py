"""Run the real ``ccgate serve`` as a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLEAN_ENV_DROP = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                  "all_proxy", "NO_PROXY", "no_proxy", "CCGATE_CONFIG", "CCGATE_DB", "CCGATE_ADMIN_KEY")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_DROP}
    env.update(extra or {})
    return env


class Gateway:
    """A running ``ccgate serve``. ``url`` is its base URL; ``log`` its stderr so far."""

    def __init__(self, tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.config_path = tmp / "ccgate.yaml"
        config = dict(config)
        config.setdefault("server", {})
        config["server"] = {**config["server"], "port": self.port}
        self.config_path.write_text(yaml.safe_dump(config))
        self.stderr_path = tmp / f"gateway-{self.port}.log"
        # Each gateway gets its own store (issued keys, usage), never the user's.
        self.db_path = tmp / "ccgate.db"
        self.env = clean_env({"CCGATE_DB": str(self.db_path), **(env or {})})
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_timeout = 15.0  # seconds to become healthy (several workers start slower)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ccgate", "serve", "--config", str(self.config_path),
                 *self.args],
                stdout=err, stderr=err, env=self.env, cwd=self.config_path.parent,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ccgate exited {self.proc.returncode}:\n{self.log}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()  # not left running (and holding its port) after the test gave up on it
        raise RuntimeError(f"ccgate did not become healthy:\n{self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def access_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def wait_access_records(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.access_records()
            if len(records) >= n:
                return records
            time.sleep(0.02)
        raise TimeoutError(f"expected {n} access log lines:\n{self.log}")

    def __enter__(self) -> Gateway:
        # ``with Gateway(...).start() as gw`` must not start a second process (the first would
        # be left running, holding its port, after the test).
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Issue 17, item 3: the worst case is bounded, and the report says how long it really took.

A network namespace the test creates (``unshare -n -m``, needs root or user namespaces) holds
a veth pair whose far end answers nothing: three DNS servers behind it with static neighbour
entries, so every query is sent and silently dropped, like resolvers that never answer. glibc
alone would spend 3 servers x 2 attempts x 5 s = 30 s on one name. ``ccgate doctor --json``
runs inside it against a gateway name; the run must end well inside a generous limit, report
dns.unresolvable with a fix that does not suggest HTTPS_PROXY, and its ``elapsed_s`` must
match the time measured from outside (a behaviour: the number is the real one).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.claude_cli import REPO_ROOT
from tests.lab.fixtures import _missing

pytestmark = pytest.mark.lab

DEAD_RESOLVERS = ("10.77.0.2", "10.77.0.3", "10.77.0.4")
GENEROUS_LIMIT = 25.0  # the doctor's own bound is ~15 s; glibc alone would take 30 s
STARTUP_MARGIN = 3.0  # interpreter start and imports happen before the doctor's clock starts


def netns_script(resolv_conf: Path, doctor_cmd: list[str]) -> str:
    neighbours = " && ".join(
        f"ip neigh add {ip} lladdr 02:00:00:00:00:0{i} dev v0"
        for i, ip in enumerate(DEAD_RESOLVERS, start=2))
    return (
        "set -e; ip link set lo up; ip link add v0 type veth peer name v1; "
        "ip addr add 10.77.0.1/24 dev v0; ip link set v0 up; ip link set v1 up; "
        f"{neighbours}; mount --bind {resolv_conf} /etc/resolv.conf; "
        f"exec {' '.join(doctor_cmd)}"
    )


@pytest.fixture
def netns_available() -> None:
    # Locally a missing tool skips; under CI (which installs iproute2 and runs as root) it fails.
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        _missing("unshare and ip (iproute2)")
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        _missing(f"a network namespace ({probe.stderr.decode().strip()})")


@pytest.fixture
def dead_dns_netns(netns_available: None, tmp_path: Path) -> Path:
    """The resolv.conf the namespace mounts: three resolvers behind the silent veth end."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("".join(f"nameserver {ip}\n" for ip in DEAD_RESOLVERS)
                    + "options timeout:5 attempts:2\n")
    return conf


def test_dead_dns_servers_the_run_is_bounded_and_elapsed_is_real(
    dead_dns_netns: Path, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cmd = [sys.executable, "-m", "ccgate", "doctor", "--json", "--no-claude-files",
           "--base-url", "https://gateway.corp.example", "--key", "lab-gateway-token-0123",
           "--preflight", "never"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO_ROOT / "src")}
    start = time.monotonic()
    proc = subprocess.run(["unshare", "-n", "-m", "sh", "-c", netns_script(dead_dns_netns, cmd)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    measured = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert measured < GENEROUS_LIMIT, measured
    report = json.loads(proc.stdout)
    assert measured - STARTUP_MARGIN <= report["elapsed_s"] <= measured, (report["elapsed_s"],
                                                                         measured)
    root = report["findings"][0]
    assert root["id"] == "dns.unresolvable"
    assert "gateway.corp.example" in root["summary"]
    assert not any("HTTPS_PROXY" in line for line in root["fix"])


def ipv6_black_hole_script(hosts: Path, port: int, doctor_cmd: list[str]) -> str:
    """IPv4 to a server on the namespace's loopback works; the name's IPv6 address sits
    behind a veth end that drops everything."""
    server = f"{sys.executable} -m http.server --bind 127.0.0.1 {port}"
    return (
        "set -e; ip link set lo up; ip link add v0 type veth peer name v1; "
        "ip -6 addr add fd77::1/64 dev v0 nodad; ip link set v0 up; ip link set v1 up; "
        "ip -6 neigh add fd77::2 lladdr 02:00:00:00:00:02 dev v0; "
        f"mount --bind {hosts} /etc/hosts; "
        f"{server} >/dev/null 2>&1 & server=$!; trap 'kill $server' EXIT; "
        f"{sys.executable} -c 'import socket,time\n"
        f"for _ in range(100):\n"
        f"  try: socket.create_connection((\"127.0.0.1\", {port}), 0.2).close(); break\n"
        f"  except OSError: time.sleep(0.05)'; "
        f"set +e; {' '.join(doctor_cmd)}"
    )


def test_ipv6_black_hole_costs_a_second_not_the_connect_timeout(
    netns_available: None, tmp_path: Path,
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 gw.lab.example\nfd77::2 gw.lab.example\n")
    home = tmp_path / "home"
    home.mkdir()
    connect_timeout = 10.0
    cmd = [sys.executable, "-m", "ccgate", "doctor", "--json", "--no-claude-files",
           "--base-url", "http://gw.lab.example:18080", "--key", "lab-gateway-token-0123",
           "--preflight", "never", "--connect-timeout", str(connect_timeout)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run(
        ["unshare", "-n", "-m", "sh", "-c", ipv6_black_hole_script(hosts, 18080, cmd)],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(proc.stdout)
    ipv6 = next(f for f in report["findings"] if f["id"] == "net.ipv6_broken")
    assert ipv6["severity"] == "warn"
    assert "ipv4first" in ipv6["fix"][0]
    assert report["elapsed_s"] < connect_timeout / 2, report["elapsed_s"]

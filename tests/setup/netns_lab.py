"""The fault lab for the Claude Code end-to-end test, run *inside* a network namespace.

``python tests/setup/netns_lab.py WORKDIR`` (started with ``ip netns exec NS``) brings up, on
the namespace's own loopback:

* a fake ``api.anthropic.com`` on 127.0.0.1:443 (TLS, lab CA) that answers every request with
  the region block ``403 {"error":{"type":"forbidden","message":"Request not allowed"}}``;
  Claude Code's first-run check connects to port 443, which is why a namespace is needed;
* a real Squid (``tests.lab.squid``) whose ``hosts_file`` maps api.anthropic.com and
  platform.claude.com to 127.0.0.1, so the CLI's CONNECT lands on the fake;
* the fake Anthropic upstream (``tests.lab.fake_anthropic``, plain HTTP);
* ``ccgate serve`` with a client token, forwarding to that upstream directly.

It writes ``WORKDIR/ready.json`` (addresses, CA file, token) and runs until its stdin closes;
then it writes ``WORKDIR/result.json`` (what the fakes saw) and stops everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.lab.certs import LabPKI  # noqa: E402
from tests.lab.fake_anthropic import LAB_API_KEY, REGION_BLOCK_BODY, FakeAnthropic  # noqa: E402
from tests.lab.procs import free_port, stop_process, wait_port  # noqa: E402
from tests.lab.squid import SquidProxy  # noqa: E402

GATEWAY_TOKEN = "ccgate-e2e-client-token-0123456789"


async def main(workdir: Path) -> None:
    pki = LabPKI()
    ca_file = pki.write_ca(workdir)
    blocked: list[str] = []

    async def region_block(request: web.Request) -> web.Response:
        blocked.append(f"{request.method} {request.host} {request.path_qs}")
        return web.Response(status=403, body=REGION_BLOCK_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", region_block)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 443, ssl_context=pki.server_context()).start()

    upstream = FakeAnthropic(expected_api_key=LAB_API_KEY).start()
    squid = SquidProxy(mode="open").start()

    port = free_port()
    config = workdir / "ccgate.yaml"
    config.write_text(
        "server:\n"
        f"  host: 127.0.0.1\n  port: {port}\n"
        f"  auth:\n    tokens: [{GATEWAY_TOKEN}]\n"
        "providers:\n"
        "  - name: anthropic\n"
        f"    base_url: {upstream.http_url}\n"
        f"    api_keys: [{LAB_API_KEY}]\n"
        "    proxy: none\n"
    )
    gw_log = workdir / "gateway.log"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    gateway = subprocess.Popen(
        [sys.executable, "-m", "ccgate", "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=gw_log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    try:
        wait_port(port, gateway, 30, gw_log)
        ready = {
            "gateway": f"http://127.0.0.1:{port}",
            "token": GATEWAY_TOKEN,
            "squid": squid.url,
            "ca_file": str(ca_file),
            "upstream": upstream.http_url,
        }
        (workdir / "ready.json.tmp").write_text(json.dumps(ready))
        os.replace(workdir / "ready.json.tmp", workdir / "ready.json")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        result = {
            "blocked": blocked,
            "upstream": [f"{r.method} {r.path}" for r in upstream.requests],
            "squid_access": squid.access_lines(),
        }
        (workdir / "result.json").write_text(json.dumps(result, indent=1))
        stop_process(gateway, timeout=10)
        squid.stop()
        shutil.rmtree(squid.workdir, ignore_errors=True)
        upstream.stop()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

"""nginx from Debian as the fast static upstream: answers POST /v1/messages with a fixed message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.common import LOOPBACK, BenchError, free_port, stop, wait_http

# The fixed answer: a complete, valid non-streaming Messages API response.
MESSAGE = {
    "id": "msg_01BenchFixedAnswer0000000",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 12,
    },
}
MESSAGE_BYTES = json.dumps(MESSAGE, separators=(",", ":")).encode()

# The same answer as a stream, for requests that carry `x-bench-response: sse` (the captured
# Claude Code body asks for `stream: true`; ccgate forwards unknown headers, so the header
# reaches nginx through the gateway too).
SSE_HEADER = ("x-bench-response", "sse")


def _sse_events() -> list[tuple[str, dict[str, object]]]:
    start = {k: v for k, v in MESSAGE.items() if k not in ("content", "stop_reason")}
    start.update(content=[], stop_reason=None,
                 usage={"input_tokens": 12, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "output_tokens": 1})
    text = MESSAGE["content"][0]["text"]  # type: ignore[index]
    return [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"}),
    ]


SSE_BYTES = "".join(f"event: {n}\ndata: {json.dumps(d, separators=(',', ':'))}\n\n"
                    for n, d in _sse_events()).encode()

_CONF = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {host}:{port} reuseport;
        location = /v1/messages {{
            # Only the upstream key is accepted: proves the gateway swapped the credential.
            if ($http_x_api_key != "{key}") {{
                return 401 '{{"type":"error","error":{{"type":"authentication_error",\
"message":"bench upstream: wrong key"}}}}';
            }}
            if ($http_x_bench_response = "sse") {{ rewrite ^ /__sse last; }}
            default_type application/json;
            add_header request-id req_bench_static always;
            return 200 '{body}';
        }}
        location = /__sse {{
            internal;
            default_type text/event-stream;
            add_header request-id req_bench_static always;
            add_header cache-control no-cache always;
            return 200 '{sse}';
        }}
{extra}
        location / {{
            default_type application/json;
            return 404 '{{"type":"error","error":{{"type":"not_found_error","message":"bench"}}}}';
        }}
    }}
}}
"""


class Nginx:
    """One nginx master + 1 worker on 127.0.0.1:<free port>, config and logs in `workdir`."""

    def __init__(self, workdir: Path, api_key: str) -> None:
        self.api_key = api_key
        self.dir = workdir / "nginx"
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                         else None)
        if exe is None:
            raise BenchError("nginx not found (Debian package nginx-light; "
                             "scripts/install-test-deps installs it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        # Workers drop to an unprivileged user when started as root: let them read the dir.
        os.chmod(self.dir, 0o755)
        # ... and reach it (the static stream files) through the temporary parent directory.
        parent = self.dir.parent
        os.chmod(parent, parent.stat().st_mode | 0o711)
        body = MESSAGE_BYTES.decode()
        sse = SSE_BYTES.decode()
        bad = [t for t in (body, sse, self.api_key) if any(c in t for c in "'$\\")]
        if bad or '"' in self.api_key:
            raise BenchError("fixed answers and key must not contain ' $ or \\ (nginx string)")
        conf = self.dir / "nginx.conf"
        conf.write_text(_CONF.format(d=self.dir, host=LOOPBACK, port=self.port, body=body, sse=sse,
                                     key=self.api_key, extra=self._more_locations()))
        self.proc = subprocess.Popen(
            [exe, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_http(self.url + "/", self.proc, what="nginx")
        except BenchError as e:
            stop(self.proc)
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise BenchError(f"{e}: {err.strip()}") from None
        return self

    def _more_locations(self) -> str:
        """OpenAI Chat Completions answers (translated lanes) and path-selected streams.

        Paths, for gateways that do not forward the x-bench-response header:
          /v1/chat/completions         fixed chat.completion JSON (Bearer key)
          /sse/v1/chat/completions     the same answer as a short chunk stream
          /sse500/v1/chat/completions  500 text chunks, finish, usage, [DONE] (static file)
          /sse/v1/messages             the fixed Anthropic SSE answer
          /sse500/v1/messages          500 Anthropic text deltas (static file)
        Static files go through `error_page 405` because nginx's static handler refuses POST.
        """
        from bench import streams

        inline = {"json": streams.CHAT_COMPLETION_BYTES.decode(),
                  "oaisse": streams.OAI_SHORT_SSE.decode()}
        for name, data in (("oai500.sse", streams.OAI_LONG_SSE),
                           ("anth500.sse", streams.ANTH_LONG_SSE)):
            (self.dir / name).write_bytes(data)
        if any(c in t for t in inline.values() for c in "'$\\") or \
                any(len(t) > 4000 for t in inline.values()):
            raise BenchError("inline OpenAI answers must be < 4000 bytes without ' $ or \\")
        bearer = f"Bearer {self.api_key}"
        auth_oai = (f'if ($http_authorization != "{bearer}") {{ return 401 '
                    "'{\"error\":{\"message\":\"bench upstream: wrong key\","
                    "\"type\":\"invalid_request_error\"}}'; }")
        auth_anth = (f'if ($http_x_api_key != "{self.api_key}") {{ return 401 '
                     "'{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                     "\"message\":\"bench upstream: wrong key\"}}'; }")
        sse = "types { } default_type text/event-stream;"
        out = [
            f"location = /v1/chat/completions {{ {auth_oai} default_type application/json; "
            f"return 200 '{inline['json']}'; }}",
            f"location = /sse/v1/chat/completions {{ {auth_oai} default_type text/event-stream; "
            f"return 200 '{inline['oaisse']}'; }}",
            f"location = /sse/v1/messages {{ {auth_anth} default_type text/event-stream; "
            f"add_header request-id req_bench_static always; "
            f"return 200 '{SSE_BYTES.decode()}'; }}",
        ]
        for path, name, auth in (("/sse500/v1/chat/completions", "oai500.sse", auth_oai),
                                 ("/sse500/v1/messages", "anth500.sse", auth_anth)):
            out += [
                f"location = {path} {{ {auth} {sse} error_page 405 =200 /__{name}; "
                f"alias {self.dir / name}; }}",
                f"location = /__{name} {{ internal; {sse} alias {self.dir / name}; }}",
            ]
        return "\n".join("        " + line for line in out)

    def stop(self) -> None:
        stop(self.proc)

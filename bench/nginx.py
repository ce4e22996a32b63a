"""nginx from Debian as the fast static upstream: every fixed answer, as fast as it can be sent.

Paths (each answers 401 unless the request carries the *upstream* key, which proves a gateway
swapped the credential):
  /v1/messages                 the fixed Anthropic message, or the same as a stream when the
                               request carries `x-bench-response: sse` (SSE_HEADER)
  /sse/v1/messages             the fixed Anthropic stream
  /sse500/v1/messages          500 Anthropic text deltas (static file)
  /v1/chat/completions         the fixed chat.completion JSON (Bearer key)
  /sse/v1/chat/completions     the same answer as a short chunk stream
  /sse500/v1/chat/completions  500 text chunks, finish, usage, [DONE] (static file)
The path-selected streams serve gateways that do not forward the x-bench-response header.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench import answers
from bench.common import LOOPBACK, BenchError
from bench.procs import LoopbackServer

# The captured Claude Code body asks for `stream: true`; ccgate forwards unknown headers, so
# this header reaches nginx through the gateway too and selects the streamed answer.
SSE_HEADER = ("x-bench-response", "sse")

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
        # An OTLP/HTTP sink for the traced cost variant: an empty 200 is an empty export answer.
        location = /v1/traces {{ return 200 ''; }}
        location / {{
            default_type application/json;
            return 404 '{{"type":"error","error":{{"type":"not_found_error","message":"bench"}}}}';
        }}
    }}
}}
"""


def _nginx_exe() -> str:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                     else None)
    if exe is None:
        raise BenchError("nginx not found (Debian package nginx-light; "
                         "scripts/install-test-deps installs it)")
    return exe


class Nginx(LoopbackServer):
    """One nginx master + 1 worker on 127.0.0.1:<free port>, config and logs in `workdir`."""

    what = "nginx"

    def __init__(self, workdir: Path, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.dir = workdir / "nginx"

    def start(self) -> Nginx:
        exe = _nginx_exe()
        self.dir.mkdir(parents=True, exist_ok=True)
        # Workers drop to an unprivileged user when started as root: let them read the dir...
        os.chmod(self.dir, 0o755)
        # ... and reach it (the static stream files) through the temporary parent directory.
        parent = self.dir.parent
        os.chmod(parent, parent.stat().st_mode | 0o711)
        conf = self._write_config()
        self.launch([exe, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def failure_detail(self) -> str:
        err = self.proc.stderr.read().decode(errors="replace") if self.proc and self.proc.stderr \
            else ""
        return f": {err.strip()}"

    def _write_config(self) -> Path:
        body, sse = answers.MESSAGE_BYTES.decode(), answers.ANTH_SHORT_SSE.decode()
        # They go inside single-quoted nginx strings as they are (the key inside double quotes).
        if any(c in t for t in (body, sse, self.api_key) for c in "'$\\") or '"' in self.api_key:
            raise BenchError("fixed answers and key must not contain ' $ or \\ (nginx string)")
        conf = self.dir / "nginx.conf"
        conf.write_text(_CONF.format(d=self.dir, host=LOOPBACK, port=self.port, body=body, sse=sse,
                                     key=self.api_key, extra=self._more_locations()))
        return conf

    def _more_locations(self) -> str:
        """The path-selected answers (module docstring) as nginx locations.

        Static files go through `error_page 405` because nginx's static handler refuses POST.
        """
        inline = {"json": answers.CHAT_COMPLETION_BYTES.decode(),
                  "oaisse": answers.OAI_SHORT_SSE.decode()}
        for name, data in (("oai500.sse", answers.OAI_LONG_SSE),
                           ("anth500.sse", answers.ANTH_LONG_SSE)):
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
            f"return 200 '{answers.ANTH_SHORT_SSE.decode()}'; }}",
        ]
        for path, name, auth in (("/sse500/v1/chat/completions", "oai500.sse", auth_oai),
                                 ("/sse500/v1/messages", "anth500.sse", auth_anth)):
            out += [
                f"location = {path} {{ {auth} {sse} error_page 405 =200 /__{name}; "
                f"alias {self.dir / name}; }}",
                f"location = /__{name} {{ internal; {sse} alias {self.dir / name}; }}",
            ]
        return "\n".join("        " + line for line in out)

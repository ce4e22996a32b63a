"""Peers side by side (issue 7): `python -m bench peers` (or `bench/run --peers`).

Each gateway is installed in its own throwaway environment under bench/.peers/ (gitignored) from
the package registries, pinned (install.PINS), started with a generated config that points
every route at the same loopback upstreams, and measured with the same load as ccgate:

  passthrough  Anthropic in, Anthropic upstream (nginx, or the scripted upstream for streams)
  translated   Anthropic in, OpenAI Chat Completions upstream
  lanes        small and Claude Code-sized requests: wrk c=1 latency, c=32 req/s (and c=8, 64
               for the Claude Code request: the plot); 500-chunk streams, static and paced
               (TTFB, per-chunk overhead, per-chunk latency); RSS idle and with 200 slow
               streams open; the captured Claude Code request once through each (correctness)

Every direct/gateway pair alternates round by round, as in `bench run`. A gateway that cannot
serve a lane is reported failing it with its error, never dropped. Nothing here talks to
anything but 127.0.0.1: peers get a fresh HOME, no proxy variables, telemetry off, and their
connect() calls are traced once (strace) to prove it.

  routes.py     the upstream endpoints every gateway is configured with
  gateways.py   the gateways: how each is configured and started (PEERS)
  install.py    installing them (and matplotlib for the plot) under bench/.peers/
  instance.py   one running gateway: start, stop with its process tree, strace's findings
  lanes.py      the lanes each gateway runs, next to its direct baseline
  memory.py     many slow streams held open at once
  probes.py     the captured Claude Code request once through each; where it connects
  targets.py    issue 7's targets from the results
  report.py     the tables and the docs section
  run.py        the whole run: every gateway in turn, results, plot, docs
"""

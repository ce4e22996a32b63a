"""Human output and the stderr progress display."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TextIO

from ccgate.doctor.model import Report, Severity, scrub

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def wants_color(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to anything
    (https://no-color.org) or the terminal is ``dumb``."""
    env = os.environ if env is None else env
    return stream.isatty() and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def wants_escapes(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Cursor control (the spinner's line redraw): a terminal that is not ``dumb``. NO_COLOR is
    about colour, not about a progress line."""
    env = os.environ if env is None else env
    return stream.isatty() and env.get("TERM") != "dumb"


def render(report: Report, *, color: bool = False) -> str:
    def c(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    tone = {"ok": "32", "warn": "33", "fail": "31", "skip": "2"}
    lines: list[str] = []
    ctx = report.context
    lines.append(f"ccgate doctor  ({report.elapsed:.1f} s)")
    lines.append(f"  base URL   {ctx.get('base_url')}  [{ctx.get('base_url_source')}]")
    lines.append(f"  credential {ctx.get('credential') or 'none'}")
    if ctx.get("proxy"):
        lines.append(f"  proxy      {ctx['proxy']}")
    if report.explanation is not None:
        exp = report.explanation
        lines.append("")
        lines.append(c("1", "Your message means:"))
        lines.append(f"  {exp.meaning}")
        if exp.explained_by:
            lines.append(_explained_line(report, exp.explained_by))
        else:
            lines.append("  The checks below did not reproduce it now; possible causes: "
                         + ", ".join(exp.candidates[:6]))
    lines.append("")
    for s in report.layers:
        lines.append(f"  {c(tone[s.status], MARK[s.status])}  {s.layer:<7} {s.note}")
    problems = [f for f in report.findings if f.severity is not Severity.OK]
    for i, f in enumerate(problems):
        lines.append("")
        head = "Root cause" if i == 0 and f.severity is Severity.FAIL else (
            "Also" if f.severity is Severity.FAIL else "Warning")
        lines.append(c(tone[str(f.severity)], f"{head}: [{f.id}] ") + f.summary)
        if f.evidence:
            lines.append("  evidence:")
            lines += [f"    {e}" for e in f.evidence]
        if f.fix:
            lines.append("  fix:")
            lines += [f"    {x}" for x in f.fix]
    if not problems:
        ok = report.get("api.ok")
        lines.append("")
        lines.append(c("32", "All checks passed. ") + (ok.summary if ok else ""))
    return scrub("\n".join(lines), report.secrets) + "\n"


def _explained_line(report: Report, explained_by: list[str]) -> str:
    """Which finding explains the pasted message, in the words of the root-cause line."""
    first, rest = explained_by[0], explained_by[1:]
    root = report.root_cause
    lead = ("the root cause below" if root is not None and root.id == first
            and root.severity is Severity.FAIL else "the finding below")
    also = f" (also: {', '.join(rest)})" if rest else ""
    return f"  On this machine it is explained by {lead}: [{first}]{also}"


class Progress:
    """A one-line spinner on stderr, only when it is a terminal."""

    FRAMES = "|/-\\"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = wants_escapes(self.stream)
        self.current = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, layer: str, state: str) -> None:
        if state == "start":
            self.current = {"network": "DNS, TCP, proxy, TLS, HTTP, API"}.get(layer, layer)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        i = 0
        start = time.monotonic()
        while not self._stop.wait(0.1):
            frame = self.FRAMES[i % 4]
            self.stream.write(f"\r{frame} checking {self.current} ... "
                              f"{time.monotonic() - start:4.1f} s\x1b[K")
            self.stream.flush()
            i += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()

"""Data types shared by every doctor check: findings, the report, the options."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ccgate.doctor.catalogue import CATALOGUE, LAYER_ORDER, render_template


class Severity(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


SEVERITY_RANK = {Severity.FAIL: 0, Severity.WARN: 1, Severity.OK: 2}


@dataclass
class Finding:
    """One observation. ``id`` is stable (see catalogue.py); the rest is for humans."""

    id: str
    severity: Severity
    layer: str
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)
    subject: str = ""  # the host or proxy this is about ("" when global)
    root_cause: bool = False  # set when a later check proves this finding is the cause
    secondary: bool = False  # a consequence of another finding: listed after the others

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "severity": str(self.severity),
            "layer": self.layer,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": list(self.fix),
        }
        if self.subject:
            out["subject"] = self.subject
        return out


def finding(
    fid: str,
    *,
    severity: Severity | None = None,
    subject: str = "",
    evidence: Iterable[str] = (),
    summary: str | None = None,
    fix: Iterable[str] | None = None,
    extra_fix: Iterable[str] = (),
    **params: object,
) -> Finding:
    """Build a finding from the catalogue entry ``fid``; ``params`` fill its templates."""
    entry = CATALOGUE[fid]
    values = {k: str(v) for k, v in params.items()}
    values.setdefault("subject", subject)
    text = summary if summary is not None else render_template(entry.summary, values)
    fixes = list(fix) if fix is not None else [render_template(f, values) for f in entry.fix]
    fixes.extend(extra_fix)
    return Finding(
        id=fid,
        severity=severity if severity is not None else Severity(entry.severity),
        layer=entry.layer,
        summary=text,
        evidence=list(evidence),
        fix=fixes,
        subject=subject,
    )


def order_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Root cause first: failures before warnings before oks; within a severity, a finding
    marked ``root_cause`` first, then by layer (config before DNS before ... API)."""

    def key(f: Finding) -> tuple[int, int, int]:
        layer = LAYER_ORDER.index(f.layer) if f.layer in LAYER_ORDER else len(LAYER_ORDER)
        rank = 0 if f.root_cause else (2 if f.secondary else 1)
        return (SEVERITY_RANK[f.severity], rank, layer)

    seen: set[tuple[str, str]] = set()
    out: list[Finding] = []
    for f in sorted(findings, key=key):
        k = (f.id, f.subject)
        if k in seen:
            continue
        seen.add(k)
        out.append(f)
    return out


@dataclass
class LayerStatus:
    layer: str
    status: str  # ok | warn | fail | skip
    note: str = ""


@dataclass
class Explanation:
    """What a pasted error message means (``--explain``)."""

    text: str
    meaning: str
    candidates: list[str]
    host: str | None = None
    status: int | None = None
    code: str | None = None
    explained_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meaning": self.meaning,
            "candidates": self.candidates,
            "host": self.host,
            "status": self.status,
            "code": self.code,
            "explained_by": self.explained_by,
        }


@dataclass
class Report:
    findings: list[Finding]
    layers: list[LayerStatus] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    explanation: Explanation | None = None
    elapsed: float = 0.0
    secrets: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.FAIL for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def root_cause(self) -> Finding | None:
        for f in self.findings:
            if f.severity is not Severity.OK:
                return f
        return None

    def ids(self) -> list[str]:
        return [f.id for f in self.findings]

    def get(self, fid: str) -> Finding | None:
        return next((f for f in self.findings if f.id == fid), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "elapsed_s": round(self.elapsed, 3),
            "context": self.context,
            "layers": [
                {"layer": s.layer, "status": s.status, "note": s.note} for s in self.layers
            ],
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.explanation is not None:
            out["explain"] = self.explanation.to_dict()
        scrubbed: dict[str, Any] = scrub_obj(out, self.secrets)
        return scrubbed

    def to_json(self) -> str:
        return msgspec.json.encode(self.to_dict()).decode()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret (and its percent-encoded form) with a mask."""
    from ccgate.doctor.mask import mask_secret

    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        if s in text:
            text = text.replace(s, mask_secret(s))
    return text


def scrub_obj(obj: Any, secrets: Iterable[str]) -> Any:
    secrets = list(secrets)
    if isinstance(obj, str):
        return scrub(obj, secrets)
    if isinstance(obj, list):
        return [scrub_obj(x, secrets) for x in obj]
    if isinstance(obj, dict):
        return {k: scrub_obj(v, secrets) for k, v in obj.items()}
    return obj


ProgressFn = Callable[[str, str], None]
"""progress(layer, state) with state "start" or a status word; used for the TTY display."""


@dataclass
class DoctorOptions:
    """Everything the doctor reads. Defaults read the real process and machine; tests pass
    their own ``env``/``home``/``resolve`` so nothing real is touched."""

    env: Mapping[str, str] | None = None  # default: os.environ
    home: Path | None = None  # default: $HOME of env, else Path.home()
    cwd: Path | None = None  # project dir for .claude/settings*.json; default Path.cwd()
    managed_dir: Path | None = None  # holds managed-settings.json; default: the system's
    read_claude_files: bool = True
    base_url: str | None = None
    proxy: str | None = None  # "none"/"direct" forces no proxy
    ca_file: str | None = None
    key: str | None = None
    key_header: str | None = None  # "x-api-key" | "authorization"; default by source
    model: str | None = None
    timeout: float = 12.0  # whole-run budget (seconds)
    connect_timeout: float = 3.0
    resolve: Mapping[str, str] = field(default_factory=dict)  # host -> IP (curl --resolve)
    preflight: str = "auto"  # auto | always | never
    preflight_urls: tuple[str, ...] | None = None  # test override of Claude Code's two URLs
    api_check: bool = True
    claude_bin: str | None = None  # path to `claude`; "" skips `claude --version`
    claude_version: str | None = None  # skip running `claude --version`
    use_os_store: bool = True
    ca_file_only: bool = False  # trust only --ca-file / NODE_EXTRA_CA_CERTS (+ Mozilla)
    explain: str | None = None
    progress: ProgressFn | None = None


_ID_RE = re.compile(r"^[a-z]+\.[a-z0-9_]+$")


def valid_id(fid: str) -> bool:
    return bool(_ID_RE.match(fid)) and fid in CATALOGUE

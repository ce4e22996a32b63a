"""Orchestration: lint, then the network walks in parallel, then correlation.

``run_checks(options) -> Report`` is the programmatic API (used by ``ccgate setup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from ccgate.claude_code import env as cc
from ccgate.claude_code.files import onboarding_done
from ccgate.doctor import classify
from ccgate.doctor.catalogue import LAYER_ORDER
from ccgate.doctor.claude_request import claude_code_headers
from ccgate.doctor.explain import decode
from ccgate.doctor.inputs import (
    PREFLIGHT_URLS,
    Credential,
    Inputs,
    gather,
    is_anthropic_host,
    preflight_reason,
)
from ccgate.doctor.lint import Route, is_local_host, lint, plan_route, set_var_fix, shell_export, shell_unset
from ccgate.doctor.mask import format_headers, mask_secret
from ccgate.doctor.model import (
    DoctorOptions,
    Finding,
    LayerStatus,
    Report,
    Severity,
    finding,
    order_findings,
)
from ccgate.doctor.net import Deadline, HttpResponse
from ccgate.doctor.probe import Env, Walk, fetch
from ccgate.doctor.tlscheck import trust_context
from ccgate.proxy_env import PROXY_VARS

DEFAULT_CLAUDE_VERSION = "2.1.330"
VERSION_TIMEOUT = 5.0  # spent inside the run budget: the walks get what is left of it

WalkTasks = dict[str, asyncio.Task[tuple[Walk, list[Finding]]]]


async def claude_version(options: DoctorOptions, env: dict[str, str]) -> str | None:
    if options.claude_version is not None:
        return options.claude_version or None
    binary = options.claude_bin if options.claude_bin is not None else shutil.which(
        "claude", path=env.get("PATH"))
    if not binary:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "--version", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**env, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # ours; a hung `claude` must not outlive the run
        return None
    m = re.search(r"\d+\.\d+\.\d+", out.decode(errors="replace"))
    return m.group(0) if m else None


def _progress(options: DoctorOptions, layer: str, state: str) -> None:
    if options.progress is not None:
        with contextlib.suppress(Exception):  # a display problem must not break the diagnosis
            options.progress(layer, state)


async def preflight_probe(url: str, route: Route, env: Env) -> tuple[Walk, list[Finding]]:
    headers = {"User-Agent": env.user_agent, "Accept": "application/json, text/plain, */*"}
    walk, resp = await fetch(route, env, "GET", headers, None)
    if not walk.ok:
        return walk, walk.findings
    if isinstance(resp, str) or resp is None:
        return walk, [*walk.findings, finding("http.no_response", subject=route.host, url=url,
                                              problem=resp or "no answer")]
    walk.reached["http"] = f"GET {url}: {resp.status}"
    return walk, [*walk.findings, *classify.classify_preflight(url, route.host, resp)]


def _api_request(inputs: Inputs, env: Env, header: str | None, messages: bool) -> tuple[
        dict[str, str], bytes, list[str]]:
    oauth = inputs.credential is not None and inputs.credential.source == cc.OAUTH_TOKEN
    headers = claude_code_headers(inputs.env, env.user_agent, model=inputs.model,
                                  version=env.claude_version, count_tokens=not messages,
                                  oauth=oauth)
    if inputs.credential is not None:
        headers.update(inputs.credential.headers(header))
    payload: dict[str, object] = {
        "model": inputs.model, "messages": [{"role": "user", "content": "ping"}]}
    if messages:
        payload["max_tokens"] = 1
    shown = ("x-api-key", "authorization", "anthropic-version", "anthropic-beta")
    sent = format_headers([(k, v) for k, v in headers.items() if k.lower() in shown], "> ")
    return headers, json.dumps(payload).encode(), sent


async def api_probe(inputs: Inputs, route: Route, env: Env) -> tuple[Walk, list[Finding]]:
    base = inputs.base_url.rstrip("/")
    cred = inputs.credential
    ctx = classify.ApiContext(
        url=route.url, base=inputs.base_url, host=route.host, model=inputs.model,
        credential_display=(f"{cred.source} {mask_secret(cred.value)} ({cred.header})"
                            if cred else "no credential"),
        credential_var=cred.var if cred else "ANTHROPIC_API_KEY",
        sent_header=cred.header if cred else "",
    )

    async def call(path: str, header: str | None, messages: bool) -> tuple[
            Walk, HttpResponse | str | None, list[str]]:
        headers, body, sent = _api_request(inputs, env, header, messages)
        target = urlsplit(base + path)
        tpath = target.path + (f"?{target.query}" if target.query else "")
        walk, resp = await fetch(route, env, "POST", headers, body, target=tpath)
        via = [f"via {route.proxy.display}"] if route.proxy else []
        return walk, resp, [f"> POST {base}{path}", *via, *sent]

    path = "/v1/messages/count_tokens?beta=true"
    walk, resp, sent = await call(path, None, False)
    if not walk.ok:
        return walk, walk.findings
    if not isinstance(resp, HttpResponse):
        return walk, [*walk.findings, finding("http.no_response", subject=route.host,
                                              url=base + path, problem=resp or "no answer")]
    walk.reached["http"] = f"POST {path}: {resp.status}"
    ctx.url = base + path
    found = (classify.classify_api(ctx, resp, sent=sent) if cred else
             [classify.classify_unauthenticated(ctx, resp, sent=sent)])
    first = found[0]
    # count_tokens is optional for gateways: a 404/405 there retries on /v1/messages
    if first.id in ("api.wrong_path", "api.unexpected_response") and resp.status in (404, 405):
        _, r2, sent2 = await call("/v1/messages?beta=true", None, True)
        if isinstance(r2, HttpResponse):
            ctx.url = base + "/v1/messages?beta=true"
            f2 = (classify.classify_api(ctx, r2, sent=sent2) if cred else
                  [classify.classify_unauthenticated(ctx, r2, sent=sent2)])
            f2[0].evidence = [*first.evidence, "then (max_tokens 1):", *f2[0].evidence]
            found, first = f2, f2[0]
    if first.id == "api.wrong_path":
        found = await _recognise_openai(inputs, route, env, ctx, found)
        first = found[0]
    # a 401 may only mean the key is in the header this endpoint does not read
    if cred is not None and first.id == "api.invalid_key" and resp.status in (401, 403):
        other = "authorization" if cred.header == "x-api-key" else "x-api-key"
        _, r3, sent3 = await call(path, other, False)
        if isinstance(r3, HttpResponse) and 200 <= r3.status < 300:
            found = [_wrong_header_finding(inputs, cred, route.host, other, [
                *first.evidence, "retried with the other header:", *sent3,
                *classify.response_evidence(r3)])]
    if found[0].id == "gateway.upstream_failed":
        found[0].evidence += await _gateway_readiness(route, env, base, _local_admin_key(inputs, route))
    return walk, [*walk.findings, *found]


HEADER_NAMES = {"authorization": "Authorization: Bearer (ANTHROPIC_AUTH_TOKEN)",
                "x-api-key": "x-api-key (ANTHROPIC_API_KEY)"}


def _wrong_header_finding(inputs: Inputs, cred: Credential, host: str, good: str,
                          evidence: list[str]) -> Finding:
    """The credential works, but only in the ``good`` header: the fix moves it there."""
    masked = mask_secret(cred.value)
    drop, use = (("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN") if good == "authorization"
                 else ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"))
    return finding(
        "api.wrong_credential_header", subject=host, host=host,
        sent_header=HEADER_NAMES[cred.header], good_header=HEADER_NAMES[good],
        evidence=evidence,
        fix=["Send the same key in the other header (use the real key where the mask is):",
             shell_unset(inputs.shell, drop), shell_export(inputs.shell, use, masked)])


async def _recognise_openai(inputs: Inputs, route: Route, env: Env, ctx: classify.ApiContext,
                            found: list[Finding]) -> list[Finding]:
    """No Anthropic Messages endpoint here: is it an OpenAI-compatible server (vLLM, Ollama,
    LiteLLM's OpenAI side, ...)? ``GET /v1/models`` in OpenAI's shape says so."""
    base = inputs.base_url.rstrip("/")
    models_url = base + ("/models" if base.endswith("/v1") else "/v1/models")
    headers = {"User-Agent": env.user_agent, "Accept": "application/json"}
    if inputs.credential is not None:
        headers["authorization"] = f"Bearer {inputs.credential.value}"
    _, resp = await fetch(route, env, "GET", headers, None, target=urlsplit(models_url).path)
    if isinstance(resp, HttpResponse) and classify.is_openai_model_list(resp):
        return [classify.classify_openai_compatible(ctx, models_url, resp, found[0].evidence)]
    return found


ADMIN_KEY_ENV = "CCGATE_ADMIN_KEY"  # as server/admin.py; not imported: the doctor stays off the server


def _local_admin_key(inputs: Inputs, route: Route) -> str | None:
    """``$CCGATE_ADMIN_KEY`` for a gateway on this machine reached directly; never sent to
    another host or through a proxy, which could keep it."""
    if route.proxy is not None or not is_local_host(route.host):
        return None
    return inputs.env.get(ADMIN_KEY_ENV) or None


async def _gateway_readiness(route: Route, env: Env, base: str, admin_key: str | None) -> list[str]:
    """What a ccgate gateway's /readyz says about each provider (evidence only). Its detail
    needs the gateway's admin key: without one this adds no line."""
    target = urlsplit(base + "/readyz").path
    headers = {"User-Agent": env.user_agent, "Accept": "application/json"}
    if admin_key:
        headers["Authorization"] = f"Bearer {admin_key}"
    _, resp = await fetch(route, env, "GET", headers, None, target=target)
    if not isinstance(resp, HttpResponse):
        return []
    data = resp.json()
    providers = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(providers, dict):
        return []
    lines = [f"> GET {base}/readyz", f"< {resp.status_line}"]
    for name, detail in providers.items():
        if isinstance(detail, dict):
            state = "reachable" if detail.get("reachable") else "unreachable"
            error = f": {detail['error']}" if detail.get("error") else ""
            lines.append(f"< provider {name}: {state}{error}")
    return lines


def _correlate(findings: list[Finding], walks: dict[str, Walk], inputs: Inputs,
               from_task: dict[str, list[Finding]]) -> None:
    by_id = {f.id: f for f in findings}
    from_preflight = [f for key, found in from_task.items() if key.startswith("preflight")
                      for f in found]
    pre_fail = [f for f in findings if f in from_preflight
                or f.subject in ("api.anthropic.com", "platform.claude.com")
                or f.subject.startswith(("api.anthropic.com:", "platform.claude.com:"))]
    pre_walks = [w for k, w in walks.items() if k.startswith("preflight")]
    replayed = any(k.startswith("preflight") for k in from_task)
    preflight_failed = any(not w.ok or "http" not in w.reached for w in pre_walks) or any(
        f.severity is Severity.FAIL for f in pre_fail)
    pf = by_id.get("claude.preflight_will_run")
    if pf is not None and replayed:
        if preflight_failed:
            pf.severity = Severity.FAIL
            api_walk = walks.get("api")
            api_fine = (api_walk is None or api_walk.ok) and not any(
                f.severity is Severity.FAIL for f in from_task.get("api", []))
            if api_fine and not is_anthropic_host(urlsplit(inputs.base_url).hostname or ""):
                pf.root_cause = True  # the gateway path works; only the preflight breaks
            else:
                pf.secondary = True  # the network fault below is the cause
            causes = [f for f in findings if f.severity is Severity.FAIL and f is not pf
                      and f in pre_fail]
            pf.evidence.append("replayed the check: "
                               + (", ".join(f"{c.id} ({c.subject})" for c in causes)
                                  or "it fails"))
            pf.evidence.append("so the first interactive `claude` start shows 'Unable to connect "
                               "to Anthropic services' and exits")
        else:
            pf.evidence.append("replayed the check: both GETs answered 200, so it will pass")
            pf.secondary = True  # a note, not a problem: never ahead of one
    _rank_configured_path_first(walks, inputs, from_task)
    nb = by_id.get("env.no_proxy_bypasses_api")
    api_walk = walks.get("api")
    if nb is not None and api_walk is not None and api_walk.stopped in ("dns", "tcp", "tls"):
        nb.severity, nb.root_cause = Severity.FAIL, True
    ca = by_id.get("env.ca_file_invalid")
    if ca is not None and any(f.layer == "tls" and f.severity is Severity.FAIL for f in findings):
        ca.severity, ca.root_cause = Severity.FAIL, True
    https_warn = [f for f in findings if f.id == "env.proxy_scheme_unsupported"]
    if len(https_warn) > 1:  # the probe confirmed the lint warning
        for f in https_warn:
            if f.severity is Severity.WARN:
                findings.remove(f)


def _rank_configured_path_first(walks: dict[str, Walk], inputs: Inputs,
                                from_task: dict[str, list[Finding]]) -> None:
    """With ANTHROPIC_BASE_URL at a gateway, a failure of that path is the root cause; the
    first-run check to api.anthropic.com only matters before onboarding, so its own failures
    rank after the gateway's."""
    if is_anthropic_host(urlsplit(inputs.base_url).hostname or ""):
        return
    api_found = from_task.get("api", [])
    if not any(f.severity is Severity.FAIL for f in api_found):
        return
    on_api_path = {(f.id, f.subject) for f in api_found}
    for key, found in from_task.items():
        if key.startswith("preflight"):
            for f in found:
                if (f.id, f.subject) not in on_api_path:
                    f.secondary = True


def _walk_label(name: str, walk: Walk) -> str:
    """A walk as the user knows it (never the internal task name)."""
    what = "first-run check" if name.startswith("preflight") else "API call"
    return f"{what} to {walk.route.host}"


def _layers(findings: list[Finding], walks: dict[str, Walk], inputs: Inputs,
            version: str | None) -> list[LayerStatus]:
    out: list[LayerStatus] = []
    rank = {"fail": 0, "warn": 1, "ok": 2}
    for layer in LAYER_ORDER:
        fs = [f for f in findings if f.layer == layer]
        worst = min((str(f.severity) for f in fs), key=lambda s: rank[s], default=None)
        notes = [w.reached[layer] for w in walks.values() if layer in w.reached]
        if layer == "config":
            note = f"base URL {inputs.base_url} ({inputs.base_url_source})"
            status = worst or "ok"
        elif layer == "claude":
            done = onboarding_done(inputs.global_config)
            note = (f"Claude Code {version}" if version else "claude not found") + (
                "; onboarding done" if done else "; onboarding not done")
            status = worst or "ok"
        elif worst is not None:
            status = worst
            bad = [f for f in fs if str(f.severity) == worst]
            note = bad[0].id
        elif notes:
            status, note = "ok", notes[0]
        else:
            status = "skip"
            stops = dict.fromkeys(f"{_walk_label(k, w)} stopped at {w.stopped}"
                                  for k, w in walks.items() if w.stopped)
            note = "; ".join(stops) if stops else "not checked"
        out.append(LayerStatus(layer, status, note))
    return out


async def run_checks_async(options: DoctorOptions) -> Report:
    start = time.monotonic()
    deadline = Deadline(options.timeout)
    _progress(options, "config", "start")
    inputs = gather(options)
    version_task = asyncio.create_task(claude_version(options, inputs.env))
    findings = lint(inputs, options)
    _progress(options, "config", "done")
    _progress(options, "claude", "start")
    version = await version_task
    _progress(options, "claude", "done")

    env = _probe_env(inputs, options, findings, version, deadline)
    tasks = _start_walks(inputs, options, env, findings)
    _progress(options, "network", "start")
    walks, from_task = await _finish_walks(tasks, options, deadline, findings)
    _progress(options, "network", "done")
    replayed = any(name.startswith("preflight") for name in tasks)

    _correlate(findings, walks, inputs, from_task)
    ordered = order_findings(findings)
    report = Report(
        findings=ordered,
        layers=_layers(ordered, walks, inputs, version),
        context=_context(inputs, walks, version, replayed),
        elapsed=time.monotonic() - start,
        secrets=_secrets(inputs, options),
    )
    if options.explain:
        exp = decode(options.explain)
        bad = [f.id for f in ordered if f.severity is not Severity.OK]
        exp.explained_by = [i for i in bad if i in exp.candidates]
        report.explanation = exp
    return report


def _probe_env(inputs: Inputs, options: DoctorOptions, findings: list[Finding],
               version: str | None, deadline: Deadline) -> Env:
    """What every walk shares: Claude Code's trust (minus CA files lint found broken), its user
    agent, the budgets."""
    ca_files: list[str] = []
    ca_sources: list[str] = []
    if inputs.env.get("NODE_EXTRA_CA_CERTS") and not any(
            f.id == "env.ca_file_invalid" and f.subject == "NODE_EXTRA_CA_CERTS" for f in findings):
        ca_files.append(str(Path(inputs.env["NODE_EXTRA_CA_CERTS"]).expanduser()))
        ca_sources.append(f"NODE_EXTRA_CA_CERTS={inputs.env['NODE_EXTRA_CA_CERTS']}")
    if options.ca_file and not any(f.subject == "--ca-file" for f in findings):
        ca_files.append(options.ca_file)
        ca_sources.append(f"--ca-file {options.ca_file}")
    return Env(
        resolve={k.lower(): v for k, v in options.resolve.items()},
        deadline=deadline, connect_timeout=options.connect_timeout,
        trust=trust_context(ca_files, options.use_os_store and not options.ca_file_only),
        ca_sources=ca_sources,
        user_agent=f"claude-cli/{version or DEFAULT_CLAUDE_VERSION} (external, cli)",
        claude_version=version,
    )


def _start_walks(inputs: Inputs, options: DoctorOptions, env: Env,
                 findings: list[Finding]) -> WalkTasks:
    """The preflight replay (when Claude Code would run it, or as asked) and the API call,
    started concurrently; "preflight<i>" and "api" name them."""
    tasks: WalkTasks = {}
    run_pre = options.preflight == "always" or (
        options.preflight == "auto" and preflight_reason(inputs) is not None)
    if run_pre:
        for i, url in enumerate(options.preflight_urls or PREFLIGHT_URLS):
            route = plan_route(url, inputs, options)
            tasks[f"preflight{i}"] = asyncio.create_task(preflight_probe(url, route, env),
                                                         name=url)
    unusable = any(f.severity is Severity.FAIL and f.id == "env.base_url_malformed"
                   for f in findings)
    if options.api_check and not unusable:
        base = inputs.base_url.rstrip("/")
        route = plan_route(base + "/v1/messages/count_tokens?beta=true", inputs, options)
        tasks["api"] = asyncio.create_task(api_probe(inputs, route, env), name=route.url)
    return tasks


async def _finish_walks(tasks: WalkTasks, options: DoctorOptions, deadline: Deadline,
                        findings: list[Finding]) -> tuple[dict[str, Walk], dict[str, list[Finding]]]:
    """Wait for the walks within the budget; a walk still running then becomes a finding."""
    walks: dict[str, Walk] = {}
    from_task: dict[str, list[Finding]] = {}
    if not tasks:
        return walks, from_task
    done, pending = await asyncio.wait(tasks.values(), timeout=deadline.left() + 0.5)
    for name, task in tasks.items():
        if task in done and task.exception() is None:
            walk, found = task.result()
            walks[name] = walk
            from_task[name] = found
            findings.extend(found)
        elif task in pending:
            task.cancel()
            url = task.get_name()
            late = finding("http.no_response", subject=urlsplit(url).hostname or url, url=url,
                           problem=f"the check did not finish within {options.timeout:.0f} s")
            # recorded under its walk, so correlation sees a failed check (not a missing one)
            from_task[name] = [late]
            findings.append(late)
        else:
            exc = task.exception()
            raise RuntimeError(f"check {name} crashed: {exc!r}") from exc
    return walks, from_task


def _context(inputs: Inputs, walks: dict[str, Walk], version: str | None,
             preflight_replayed: bool) -> dict[str, object]:
    cred = inputs.credential
    return {
        "claude_version": version,
        "base_url": inputs.base_url,
        "base_url_source": inputs.base_url_source,
        "credential": f"{cred.source} {mask_secret(cred.value)} via {cred.header}" if cred else None,
        "model": inputs.model,
        "proxy": next((w.route.proxy.display for w in walks.values() if w.route.proxy), None),
        "preflight_replayed": preflight_replayed,
        "settings_files": [str(p) for p in inputs.settings_files],
    }


def _secrets(inputs: Inputs, options: DoctorOptions) -> list[str]:
    """Every value the report must not show: the credential, the key and token variables and
    proxy passwords (also percent-encoded)."""
    out: set[str] = set()
    if inputs.credential is not None:
        out.add(inputs.credential.value)
    named = (cc.API_KEY, cc.AUTH_TOKEN, ADMIN_KEY_ENV, *PROXY_VARS)
    cc.collect_secrets({var: inputs.env.get(var, "") for var in named}, out)
    cc.collect_secrets(options.proxy or "", out)
    return sorted(s for s in out if s)


def run_checks(options: DoctorOptions) -> Report:
    """Run every check and return the report (blocking; do not call from a running loop,
    use ``run_checks_async`` there). ``elapsed`` is the whole run, loop teardown included."""
    start = time.monotonic()
    report = asyncio.run(run_checks_async(options))
    report.elapsed = time.monotonic() - start
    return report


__all__ = ["run_checks", "run_checks_async", "set_var_fix"]

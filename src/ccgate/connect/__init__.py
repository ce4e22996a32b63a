"""Connect a provider without writing YAML: the one backend behind ``ccgate connect``,
``ccgate providers``, ``ccgate models``, the admin API (``/admin/providers``...) and the console.

API (every call raises only ``ConnectError``, whose message is safe to show; ``bad_input``
tells a caller's mistake, exit 2 / HTTP 400, from a failure elsewhere)::

    c = Connector(config_path=None, env=None)        # the file serve would use, else created in
                                                     # the user config dir; env defaults to os.environ
    spec = ProviderInput(preset="deepseek" | base_url=URL, kind="openai-compatible",
                         name=None, key="sk-..." | "env:VAR" | "file:PATH",
                         models=("model-id", ...), tiers={"haiku": "small-model", ...})
    await c.discover_models(spec)   -> list[ModelInfo]   GET {base}/models (OpenAI kinds) or
                                                         {base}/v1/models; typed ids on 404/empty
    await c.probe_local()           -> list[LocalServer] Ollama/LM Studio/vLLM/llama.cpp on 127.0.0.1
    await c.check(spec, model=None, tools=False) -> CheckResult   one real max_tokens=1 request
                                                         (+ a trivial tool call with tools=True)
    await c.connect(spec, test=True, force=False, tools=True) -> ConnectResult
                                                         check, then write provider + tier routes
                                                         (backup; comments kept; key in a 0600 file)
    c.providers()                   -> list[ProviderSummary]
    await c.test_provider(name, model=None, tools=False) -> CheckResult
    c.remove(name)                  -> RemoveResult
    await c.models(name=None)       -> list[ProviderModels]   live list + routes per provider

    plan_claude_code(config_path, env, home, result.claude_code_env) -> ClaudeCodeWiring
    apply_claude_code(wiring)       -> ClaudeCodeWiring  setup claude-code's plan/backup/undo
    parse_map("opus=ID,sonnet=ID,haiku=ID") -> {tier: id};  TIERS

Every result has ``to_dict()`` for JSON. Modules: ``model`` (the types), ``inputs`` (input ->
provider entry, pure), ``tiers`` (tiers -> routes, pure), ``verdict`` (an answer -> finding and
message, pure; the doctor's classifier), ``probe`` (the requests, through
``upstream.UpstreamTransport``), ``configfile`` (round-trip YAML, validation, atomic write with
backup), ``claude`` (Claude Code's settings through ``setup``), ``connector``.
"""

from ccgate.connect.claude import ClaudeCodeWiring, apply_claude_code, plan_claude_code
from ccgate.connect.connector import Connector, ProviderModels, RemoveResult, config_path_for
from ccgate.connect.model import (
    TIERS,
    CheckResult,
    ConnectError,
    ConnectResult,
    ModelInfo,
    ProviderInput,
    ProviderSummary,
    RouteInfo,
    ToolsVerdict,
)
from ccgate.connect.probe import LOCAL_PORTS, LocalServer
from ccgate.connect.tiers import parse_map, plan_tiers, tier_defaults

__all__ = [
    "LOCAL_PORTS",
    "TIERS",
    "CheckResult",
    "ClaudeCodeWiring",
    "ConnectError",
    "ConnectResult",
    "Connector",
    "LocalServer",
    "ModelInfo",
    "ProviderInput",
    "ProviderModels",
    "ProviderSummary",
    "RemoveResult",
    "RouteInfo",
    "ToolsVerdict",
    "apply_claude_code",
    "config_path_for",
    "parse_map",
    "plan_claude_code",
    "plan_tiers",
    "tier_defaults",
]

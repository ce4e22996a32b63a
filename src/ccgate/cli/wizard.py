"""The interactive side of ``ccgate connect``: asks for what the flags did not give, in the
order a person thinks of it (which provider, where, the key, which model, which tiers), then
runs the same backend calls the flags path does."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

from ccgate.config.model import ProviderKind
from ccgate.config.presets import PRESETS, find_preset
from ccgate.config.secrets import mask
from ccgate.connect import (
    TIERS,
    ConnectError,
    Connector,
    LocalServer,
    ModelInfo,
    ProviderInput,
    tier_defaults,
)
from ccgate.connect.inputs import provider_name

MAX_LISTED = 40


class Prompter:
    """Questions on ``out``, answers from ``inp``; EOF is an answer of "" (the default)."""

    def __init__(self, inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
        self.inp, self.out = inp, out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, question: str, default: str = "") -> str:
        suffix = f" [{default}]" if default else ""
        self.out.write(f"{question}{suffix}: ")
        self.out.flush()
        line = self.inp.readline()
        return line.strip() or default

    def yes(self, question: str, default: bool) -> bool:
        answer = self.ask(f"{question} [{'Y/n' if default else 'y/N'}]").lower()
        return default if not answer else answer in ("y", "yes")

    def secret(self, question: str) -> str:
        return getpass.getpass(f"{question}: ", stream=self.out).strip()


def run_wizard(connector: Connector, spec: ProviderInput, args: argparse.Namespace,
               env: dict[str, str]) -> int:
    from ccgate.cli.connect import EXIT_FAILED, finish, print_check

    p = Prompter()
    p.say(f"Connect a provider to ccgate ({connector.config_path})\n")
    if spec.preset is None and spec.base_url is None:
        spec = choose_provider(p, asyncio.run(connector.probe_local()))
    spec = ask_location(p, spec)
    if spec.key is None:
        spec = replace(spec, key=ask_key(p, connector, spec))
    if not spec.models and not spec.tiers.get("main"):
        spec = replace(spec, models=pick_model(p, connector, spec))
    if not spec.tiers:
        spec = replace(spec, tiers=ask_tiers(p, spec.models))
    check = None
    if not args.no_test:
        p.say("\nTesting with one real request (max_tokens 1)...")
        check = asyncio.run(connector.check(spec, tools=not args.no_tools_check))
        print_check(check, p.out)
        if not check.ok and not p.yes("Save anyway?", False):
            p.say("Nothing saved.")
            return EXIT_FAILED
    result = asyncio.run(connector.connect(spec, test=False))  # tested just above
    wire = not args.no_claude_code and p.yes(
        "\nPoint Claude Code at the gateway (its settings.json, with a backup)?", True)
    return finish(connector, result, args, env, p.out, wire=wire)


def choose_provider(p: Prompter, local: Sequence[LocalServer]) -> ProviderInput:
    found = {server.preset: server for server in local}
    names = list(PRESETS)
    for i, name in enumerate(names, 1):
        preset = PRESETS[name]
        note = f"  <- answering at {found[name].base_url}" if name in found else ""
        p.say(f"  {i:2}) {name:16} {preset.kind}{note}")
    p.say(f"  {len(names) + 1:2}) any OpenAI-compatible endpoint (/v1/chat/completions)")
    p.say(f"  {len(names) + 2:2}) any Anthropic-compatible endpoint (/v1/messages)")
    default = str(names.index(local[0].preset) + 1) if local else ""
    while True:
        answer = p.ask("Provider (number or name)", default)
        if answer.isdigit() and 1 <= int(answer) <= len(names) + 2:
            index = int(answer) - 1
            if index >= len(names):
                kind: ProviderKind = "openai-compatible" if index == len(names) else "anthropic-compatible"
                return ProviderInput(kind=kind)
            answer = names[index]
        chosen = find_preset(answer)
        if chosen is not None:
            base = found[chosen.name].base_url if chosen.name in found else None
            return ProviderInput(preset=chosen.name, base_url=base)
        p.say(f"  {answer!r} is not in the list")


def ask_location(p: Prompter, spec: ProviderInput) -> ProviderInput:
    """The base URL (asked for custom endpoints and self-hosted presets) and the name."""
    preset = find_preset(spec.preset or "")
    if preset is None:
        example = "https://host/v1" if spec.kind == "openai-compatible" else "https://host/anthropic"
        base = spec.base_url or ""
        while not base.startswith(("http://", "https://")):
            base = p.ask(f"Base URL (e.g. {example})", base)
        spec = replace(spec, base_url=base)
        return replace(spec, name=spec.name or p.ask("Name for it", provider_name(spec)))
    if preset.self_hosted:
        base = p.ask("Base URL", spec.base_url or preset.base_url)
        spec = replace(spec, base_url=base if base != preset.base_url else None)
    return spec


def ask_key(p: Prompter, connector: Connector, spec: ProviderInput) -> str | None:
    preset = find_preset(spec.preset or "")
    try:
        stored = connector.draft(replace(spec, key=None)).key
    except ConnectError:
        stored = None
    if stored is not None:
        hint = f"Enter keeps the stored key {mask(stored.value)}"
    elif preset is None or preset.self_hosted:
        hint = "Enter for none"
    else:
        hint = "env:VAR or file:PATH work too"
    key = p.secret(f"API key (hidden; {hint})")
    return key or None


def pick_model(p: Prompter, connector: Connector, spec: ProviderInput) -> tuple[str, ...]:
    try:
        models = asyncio.run(connector.discover_models(spec))
    except ConnectError as exc:
        p.say(f"Could not list the models: {exc.message}")
        models = []
    if not models:
        p.say("The provider lists no models: type the id.")
        model = ""
        while not model:
            model = p.ask("Model id")
        return (model,)
    _list_models(p, models)
    answer = p.ask("Model (number or id)", "1")
    if answer.isdigit() and 1 <= int(answer) <= len(models):
        answer = models[int(answer) - 1].id
    others = tuple(m.id for m in models if m.id != answer)
    return (answer, *others)


def _list_models(p: Prompter, models: Sequence[ModelInfo]) -> None:
    for i, model in enumerate(models[:MAX_LISTED], 1):
        extra = f"  ({model.display_name})" if model.display_name else ""
        window = f"  ctx {model.context_window}" if model.context_window else ""
        p.say(f"  {i:2}) {model.id}{extra}{window}")
    if len(models) > MAX_LISTED:
        p.say(f"  ... and {len(models) - MAX_LISTED} more (type the id)")


def ask_tiers(p: Prompter, models: Sequence[str]) -> dict[str, str]:
    """Claude Code's tiers; by default the chosen model serves them all."""
    main = models[0]
    if p.yes(f"Use {main} for every Claude Code tier ({', '.join(TIERS)})?", True):
        return {}
    defaults = tier_defaults(models)
    tiers = {}
    for tier in TIERS:
        label = "haiku (background)" if tier == "haiku" else tier
        answer = p.ask(f"  {label}", defaults.get(tier, main))
        if answer != main:
            tiers[tier] = answer
    return {"main": main, **tiers}

"""Model routes: the first matching ``models:`` rule gives the targets, else the first provider."""

from pathlib import Path

from ccgate.config.load import load_config
from ccgate.config.model import Config
from ccgate.routing import route_model


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "ccgate.yaml"
    path.write_text(text)
    return load_config(str(path), {}).config


def test_routes(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "providers:\n  - name: main\n  - name: other\n    base_url: https://other.example/anthropic\n"
        "models:\n  - match: 'claude-*haiku*'\n    to: other/glm-4.6\n  - match: 'claude-*'\n    to: main\n",
    )
    target = route_model(cfg, "claude-haiku-4-5").primary
    assert (target.provider.name, target.model) == ("other", "glm-4.6")
    target = route_model(cfg, "claude-sonnet-4-5").primary
    assert (target.provider.name, target.model) == ("main", "claude-sonnet-4-5")
    target = route_model(cfg, "gpt-x").primary
    assert (target.provider.name, target.model) == ("main", "gpt-x")  # unmatched: first provider


def test_route_carries_limits_and_fallbacks(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "providers:\n  - name: main\n  - preset: deepseek-openai\n    api_keys: [k-ds-0123456789]\n"
        "models:\n  - match: 'claude-*'\n    to: main\n    max_tokens: 8192\n    context_window: 64000\n"
        "    fallbacks: [deepseek-openai/deepseek-chat]\n",
    )
    route = route_model(cfg, "claude-sonnet-4-5")
    assert [(t.provider.name, t.model) for t in route.targets] == [
        ("main", "claude-sonnet-4-5"), ("deepseek-openai", "deepseek-chat")
    ]
    assert (route.max_tokens, route.context_window) == (8192, 64000)

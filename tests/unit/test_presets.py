from pathlib import Path

import pytest

from ccgate.config.model import Provider
from ccgate.config.presets import ALIASES, PRESETS

DOC = (Path(__file__).parents[2] / "docs" / "providers.md").read_text()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_documented_with_its_url_and_quirks(name: str) -> None:
    preset = PRESETS[name]
    row = next((line for line in DOC.splitlines() if line.startswith(f"| `{name}` |")), None)
    assert row is not None, f"docs/providers.md has no row for {name}"
    assert preset.base_url in row and preset.kind in row
    for quirk in preset.quirks:
        assert f"`{quirk}`" in row


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_valid_provider(name: str) -> None:
    preset = PRESETS[name]
    provider = Provider(
        name=name, kind=preset.kind, base_url=preset.base_url, auth_header=preset.auth_header,
        quirks=dict(preset.quirks),
    )
    assert provider.translated == (preset.kind == "openai-compatible")


def test_aliases_point_at_presets() -> None:
    assert set(ALIASES.values()) <= set(PRESETS)

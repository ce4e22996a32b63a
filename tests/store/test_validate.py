"""Durations, names, globs and limits: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest

from ccgate.store import InvalidInput, parse_duration
from ccgate.store.validate import check_glob, check_globs, check_limit, check_name


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("12h", 43200), ("90d", 90 * 86400), ("1w", 604800), ("522w", 522 * 604800),
    ("3660d", 3660 * 86400),
])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


# The same rule as the admin API's OpenAPI pattern (store/validate.DURATION_PATTERN): no spaces
# around it (the document cannot say "after stripping"), no leading zeros, at most ten years.
@pytest.mark.parametrize("text", ["", "5", "5x", "d", "1.5h", "-1d", "1 d", "1D", "0d", "1h30m", "99999w", "P1D",
                                  " 7d ", "07d", "523w", "3661d", "9" * 5000 + "d", "²d"])
def test_bad_durations_name_the_field_and_show_examples(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text, "--expires")
    message = str(info.value)
    assert message.startswith("--expires: ")
    assert "ten years" in message or "90d" in message


@pytest.mark.parametrize("name", ["alice", "ci-bot", "team.alpha", "a", "bob@corp", "x" * 64, "A1_b"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 65, "key_abc", "tab\there", "ünïcode", "a/b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"^name: "):
        check_name(name)


@pytest.mark.parametrize("glob", ["claude-*", "claude-*haiku*", "claude-sonnet-4-5", "gpt-[45]*", "*", "a?c"])
def test_good_globs(glob: str) -> None:
    assert check_glob(glob) == glob


@pytest.mark.parametrize(("glob", "why"), [
    ("", "not a model glob"), ("claude *", "not a model glob"), ("claude-[45", "unclosed"),
    ("x" * 201, "not a model glob"),
])
def test_bad_globs(glob: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_glob(glob)


def test_globs_deduplicated_and_bounded() -> None:
    assert check_globs(["a*", "b*", "a*"]) == ("a*", "b*")
    with pytest.raises(InvalidInput, match="at most 64"):
        check_globs([f"m{i}" for i in range(65)])


@pytest.mark.parametrize("value", [0, -5, True, 10**10])
def test_bad_limits(value: int) -> None:
    with pytest.raises(InvalidInput, match=r"^rpm: must be a whole number"):
        check_limit(value, "rpm")


def test_limits() -> None:
    assert check_limit(None, "rpm") is None
    assert check_limit(60, "rpm") == 60

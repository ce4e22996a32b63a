"""``NO_COLOR`` (https://no-color.org): the doctor's report is coloured only on a terminal, never
when NO_COLOR is set to anything or TERM is dumb; the spinner redraws only on a real terminal."""

from __future__ import annotations

import io

import pytest

from ccgate.doctor.render import wants_color, wants_escapes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "color", "escapes"), [
    ({"TERM": "xterm-256color"}, True, True),
    ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False, True),
    ({"NO_COLOR": "yes"}, False, True),
    ({"NO_COLOR": ""}, True, True),  # set but empty does not count (the convention)
    ({"TERM": "dumb"}, False, False),
])
def test_colour_follows_no_color_and_term(env: dict[str, str], color: bool, escapes: bool) -> None:
    assert wants_color(Terminal(), env) is color
    assert wants_escapes(Terminal(), env) is escapes


def test_no_colour_into_a_file_or_pipe() -> None:
    assert not wants_color(io.StringIO(), {"TERM": "xterm"})
    assert not wants_escapes(io.StringIO(), {"TERM": "xterm"})

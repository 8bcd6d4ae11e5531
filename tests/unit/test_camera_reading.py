"""What a prompt asks of the camera, said back: the plan in words, and bracketed text that is no command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.engines.motion.plan import COMMAND_NAMES, unknown_commands
from kinema.engines.prompt_camera import read_camera


@pytest.mark.parametrize(
    ("prompt", "unknown"),
    [
        ("[Pan lft] a harbour", ["Pan lft"]),
        ("[Pan left and tilt up] a harbour", []),
        ("[cinematic] [Push in, zoom ot]", ["cinematic", "zoom ot"]),
        ("\N{LEFT BLACK LENTICULAR BRACKET}左摇\N{RIGHT BLACK LENTICULAR BRACKET} [push-in!]", []),
        ("[] [ , ] no brackets here", []),
        ("[Pan left; Shaky] unclosed [Tilt", ["Shaky"]),
    ],
)
def test_unknown_commands_are_the_bracketed_pieces_that_name_none(prompt: str, unknown: list[str]) -> None:
    assert unknown_commands(prompt) == unknown


@given(st.lists(st.sampled_from(sorted(COMMAND_NAMES.values())), min_size=1, max_size=12))
def test_prompts_of_commands_alone_have_nothing_unknown(names: list[str]) -> None:
    prompt = " ".join(f"[{name.upper() if len(name) % 2 else name}]" for name in names)
    assert unknown_commands(prompt) == []
    assert read_camera(prompt).unknown == ()


def test_a_typo_is_flagged_with_the_command_it_resembles() -> None:
    reading = read_camera("[Pan lft] A harbour at dawn")
    assert reading.summary == "Push in (the default: no camera command found)"
    (typo,) = reading.unknown
    assert (typo.text, typo.suggestion) == ("Pan lft", "Pan left")
    assert typo.warning == "[Pan lft] is not a camera command; did you mean [Pan left]?"
    assert read_camera("[cinematic] x").unknown[0].warning == "[cinematic] is not a camera command"


@pytest.mark.parametrize(
    ("prompt", "summary"),
    [
        ("[Pan left] a harbour [Tilt up]", "Pan left, then Tilt up"),
        ("[Pan left, Tilt up] then [Shake]", "Pan left + Tilt up, then Shake"),
        ("the camera zooms in slowly", "Zoom in (read from the words)"),
        ("a harbour", "Push in (the default: no camera command found)"),
    ],
)
def test_the_plan_in_words(prompt: str, summary: str) -> None:
    assert read_camera(prompt).summary == summary


def test_the_wire_shape() -> None:
    wire = read_camera("[Pan left] x [Tlt up]").to_wire()
    assert wire == {
        "summary": "Pan left",
        "source": "brackets",
        "segments": [{"moves": [{"move": "pan_left", "name": "Pan left"}], "start": 0.0, "end": 1.0}],
        "unknown": [
            {
                "text": "Tlt up",
                "suggestion": "Tilt up",
                "warning": "[Tlt up] is not a camera command; did you mean [Tilt up]?",
            }
        ],
    }

"""The camera plan read from a prompt: bracketed commands, plain words, the default, and robustness."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from tests.support.deadline import finishes_within

from kinema.engines.motion.plan import (
    CHINESE_COMMAND_NAMES,
    COMMAND_NAMES,
    MAX_SEGMENTS,
    MAX_SIMULTANEOUS_MOVES,
    CameraMove,
    CameraPlan,
    PlanSource,
    Segment,
    plan_camera,
)

M = CameraMove


def only_moves(plan: CameraPlan) -> tuple[CameraMove, ...]:
    """The moves of a plan that must have exactly one segment covering the clip."""
    assert len(plan.segments) == 1
    segment = plan.segments[0]
    assert (segment.start, segment.end) == (0.0, 1.0)
    return segment.moves


def assert_valid(plan: CameraPlan) -> None:
    assert isinstance(plan.source, PlanSource)
    assert len(plan.segments) >= 1
    assert plan.segments[0].start == 0.0
    assert plan.segments[-1].end == 1.0
    for before, after in zip(plan.segments, plan.segments[1:], strict=False):
        assert after.start == before.end
    for segment in plan.segments:
        assert 0.0 <= segment.start < segment.end <= 1.0
        assert 1 <= len(segment.moves) <= MAX_SIMULTANEOUS_MOVES
        assert len(set(segment.moves)) == len(segment.moves)
        assert all(isinstance(move, CameraMove) for move in segment.moves)
    if plan.source is not PlanSource.BRACKETS:
        assert len(plan.segments) == 1
    for segment in plan.segments:  # brackets in turn share the clip equally
        assert segment.duration == pytest.approx(1 / len(plan.segments))
    assert len(plan.segments) <= MAX_SEGMENTS


# --- The commands --------------------------------------------------------------------------


def test_every_move_has_an_english_and_a_chinese_name() -> None:
    assert set(COMMAND_NAMES) == set(CameraMove)
    assert set(CHINESE_COMMAND_NAMES) == set(CameraMove)
    assert len(CameraMove) == 15


ENGLISH = [
    ("Pan left", M.PAN_LEFT),
    ("Pan right", M.PAN_RIGHT),
    ("Tilt up", M.TILT_UP),
    ("Tilt down", M.TILT_DOWN),
    ("Zoom in", M.ZOOM_IN),
    ("Zoom out", M.ZOOM_OUT),
    ("Push in", M.PUSH_IN),
    ("Pull out", M.PULL_OUT),
    ("Truck left", M.TRUCK_LEFT),
    ("Truck right", M.TRUCK_RIGHT),
    ("Pedestal up", M.PEDESTAL_UP),
    ("Pedestal down", M.PEDESTAL_DOWN),
    ("Shake", M.SHAKE),
    ("Tracking shot", M.TRACKING_SHOT),
    ("Static shot", M.STATIC_SHOT),
]

CHINESE = [
    ("左摇", M.PAN_LEFT),
    ("右摇", M.PAN_RIGHT),
    ("上摇", M.TILT_UP),
    ("下摇", M.TILT_DOWN),
    ("变焦推近", M.ZOOM_IN),
    ("变焦拉远", M.ZOOM_OUT),
    ("推进", M.PUSH_IN),
    ("拉远", M.PULL_OUT),
    ("左移", M.TRUCK_LEFT),
    ("右移", M.TRUCK_RIGHT),
    ("上升", M.PEDESTAL_UP),
    ("下降", M.PEDESTAL_DOWN),
    ("晃动", M.SHAKE),
    ("跟随", M.TRACKING_SHOT),
    ("固定", M.STATIC_SHOT),
]


def test_the_tables_match_the_published_names() -> None:
    assert {move: name for name, move in ENGLISH} == dict(COMMAND_NAMES)
    assert {move: name for name, move in CHINESE} == dict(CHINESE_COMMAND_NAMES)


@pytest.mark.parametrize(("command", "move"), ENGLISH + CHINESE)
def test_each_bracketed_command_gives_its_move(command: str, move: CameraMove) -> None:
    plan = plan_camera(f"A lighthouse on a cliff at dusk [{command}]")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (move,)


@pytest.mark.parametrize(("command", "move"), CHINESE)
def test_each_chinese_command_reads_in_chinese_brackets(command: str, move: CameraMove) -> None:
    plan = plan_camera(f"海边的灯塔【{command}】")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (move,)


@pytest.mark.parametrize(
    "prompt",
    [
        "[pan  LEFT]",
        "[ Pan left ]",
        "[PAN LEFT]",
        "[\tpan\nleft ]",
        "【Pan left】",
        "\N{FULLWIDTH LEFT SQUARE BRACKET}Pan left\N{FULLWIDTH RIGHT SQUARE BRACKET}",
        "[pan-left]",
    ],
)
def test_case_spacing_and_bracket_style_do_not_matter(prompt: str) -> None:
    plan = plan_camera(f"A field of wheat {prompt}")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (M.PAN_LEFT,)


def test_the_bracket_is_read_wherever_it_is() -> None:
    assert only_moves(plan_camera("[ Push in ] a quiet street")) == (M.PUSH_IN,)


# --- At the same time ----------------------------------------------------------------------


def test_commands_in_one_bracket_run_together() -> None:
    plan = plan_camera("A city skyline [Pan left, Pedestal up]")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (M.PAN_LEFT, M.PEDESTAL_UP)


@pytest.mark.parametrize(
    "prompt",
    [
        "[Pan left\N{FULLWIDTH COMMA}Pedestal up]",
        "[Pan left、Pedestal up]",
        "[Pan left; Pedestal up]",
        "[Pan left and Pedestal up]",
        "【左摇、上升】",
        "【左摇\N{FULLWIDTH COMMA}上升】",
    ],
)
def test_every_separator_splits_commands(prompt: str) -> None:
    assert only_moves(plan_camera(prompt)) == (M.PAN_LEFT, M.PEDESTAL_UP)


def test_at_most_three_moves_at_once_the_first_three_kept() -> None:
    plan = plan_camera("[Zoom in, Pan left, Tilt up, Truck right]")
    assert only_moves(plan) == (M.ZOOM_IN, M.PAN_LEFT, M.TILT_UP)


def test_a_repeated_command_counts_once() -> None:
    assert only_moves(plan_camera("[Pan left, pan LEFT, Shake]")) == (M.PAN_LEFT, M.SHAKE)


def test_unknown_words_in_a_bracket_are_ignored() -> None:
    assert only_moves(plan_camera("[Pan left, very cinematic, Shake]")) == (M.PAN_LEFT, M.SHAKE)


def test_static_shot_with_other_moves_is_dropped() -> None:
    assert only_moves(plan_camera("[Static shot, Pan left]")) == (M.PAN_LEFT,)


def test_static_shot_takes_no_place_among_three() -> None:
    plan = plan_camera("[Static shot, Pan left, Tilt up, Zoom in]")
    assert only_moves(plan) == (M.PAN_LEFT, M.TILT_UP, M.ZOOM_IN)


def test_static_shot_alone_is_a_segment_without_motion() -> None:
    plan = plan_camera("A portrait [Static shot]")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (M.STATIC_SHOT,)


# --- One after another ---------------------------------------------------------------------


def test_brackets_in_different_places_run_in_turn() -> None:
    plan = plan_camera("A [Push in] then B [Pan right]")
    assert plan.source is PlanSource.BRACKETS
    assert plan.segments == (
        Segment((M.PUSH_IN,), 0.0, 0.5),
        Segment((M.PAN_RIGHT,), 0.5, 1.0),
    )


def test_three_brackets_split_the_clip_in_thirds() -> None:
    plan = plan_camera("[Static shot] a beat, [Pan left, Shake] then [Pull out]")
    assert [segment.moves for segment in plan.segments] == [
        (M.STATIC_SHOT,),
        (M.PAN_LEFT, M.SHAKE),
        (M.PULL_OUT,),
    ]
    assert [segment.start for segment in plan.segments] == [0.0, 1 / 3, 2 / 3]
    assert plan.segments[-1].end == 1.0
    assert_valid(plan)


def test_a_bracket_without_a_command_is_no_segment() -> None:
    plan = plan_camera("[cinematic] a harbour [Tilt up] [4k, moody]")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (M.TILT_UP,)


def test_nested_and_unbalanced_brackets_keep_the_innermost_command() -> None:
    assert only_moves(plan_camera("[[Pan left]]")) == (M.PAN_LEFT,)
    assert only_moves(plan_camera("[Pan left [Zoom in] ]")) == (M.ZOOM_IN,)
    # No bracket ever closes here, so the words are read instead.
    assert only_moves(plan_camera("] Pan left [Zoom in")) == (M.PAN_LEFT, M.ZOOM_IN)


# --- Plain words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "move"),
    [
        ("The camera slowly zooms in on the castle", M.ZOOM_IN),
        ("zooming out to reveal the valley", M.ZOOM_OUT),
        ("The camera pans to the right across the bay", M.PAN_RIGHT),
        ("panning left over the rooftops", M.PAN_LEFT),
        ("the camera tilts up to the sky", M.TILT_UP),
        ("it tilts down to the river", M.TILT_DOWN),
        ("a slow push in on her face", M.PUSH_IN),
        ("dolly in toward the door", M.PUSH_IN),
        ("the camera moves closer to the flower", M.PUSH_IN),
        ("a dolly shot of the hallway", M.PUSH_IN),
        ("the camera pulls back from the crowd", M.PULL_OUT),
        ("pull out to a wide view", M.PULL_OUT),
        ("dolly out of the room", M.PULL_OUT),
        ("the camera trucks left past the cars", M.TRUCK_LEFT),
        ("the camera moves to the right", M.TRUCK_RIGHT),
        ("crane up over the wall", M.PEDESTAL_UP),
        ("pedestal down to the table", M.PEDESTAL_DOWN),
        ("the camera rises above the trees", M.PEDESTAL_UP),
        ("handheld footage of a market", M.SHAKE),
        ("hand-held, a little shaky", M.SHAKE),
        ("camera shake as the train passes", M.SHAKE),
        ("a tracking shot of a runner", M.TRACKING_SHOT),
        ("the camera follows the dog", M.TRACKING_SHOT),
        ("a locked-off static camera view of the square", M.STATIC_SHOT),
        ("still camera, a candle burning", M.STATIC_SHOT),
        ("镜头缓慢左摇", M.PAN_LEFT),
        ("镜头变焦拉远", M.ZOOM_OUT),
    ],
)
def test_plain_words_steer_the_camera(prompt: str, move: CameraMove) -> None:
    plan = plan_camera(prompt)
    assert plan.source is PlanSource.WORDS
    assert only_moves(plan) == (move,)


@pytest.mark.parametrize(
    "prompt",
    ["a panorama of mountains", "an expanded view", "a pantry full of jars", "a zoo in the rain"],
)
def test_words_only_count_whole(prompt: str) -> None:
    plan = plan_camera(prompt)
    assert plan.source is PlanSource.DEFAULT
    assert only_moves(plan) == (M.PUSH_IN,)


def test_several_camera_words_run_together_in_order_of_appearance() -> None:
    plan = plan_camera("The camera pans left while it slowly zooms in, handheld, then pans left again")
    assert plan.source is PlanSource.WORDS
    assert only_moves(plan) == (M.PAN_LEFT, M.ZOOM_IN, M.SHAKE)


def test_english_and_chinese_words_keep_their_order() -> None:
    assert only_moves(plan_camera("上升 then zoom out")) == (M.PEDESTAL_UP, M.ZOOM_OUT)


def test_static_words_with_a_move_are_dropped() -> None:
    assert only_moves(plan_camera("static camera, the camera zooms in")) == (M.ZOOM_IN,)


def test_brackets_win_over_words() -> None:
    plan = plan_camera("The camera zooms in on a fox [Pan right]")
    assert plan.source is PlanSource.BRACKETS
    assert only_moves(plan) == (M.PAN_RIGHT,)


def test_words_are_read_when_no_bracket_is_recognised() -> None:
    plan = plan_camera("[cinematic] the camera zooms in")
    assert plan.source is PlanSource.WORDS
    assert only_moves(plan) == (M.ZOOM_IN,)


# --- Nothing said --------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "a cat", "   \n", "[]", "[cinematic, 4k]"])
def test_nothing_said_gives_a_gentle_push_in(prompt: str) -> None:
    plan = plan_camera(prompt)
    assert plan.source is PlanSource.DEFAULT
    assert only_moves(plan) == (M.PUSH_IN,)


# --- The data types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moves", "start", "end"),
    [
        ((), 0.0, 1.0),
        ((M.PAN_LEFT, M.TILT_UP, M.ZOOM_IN, M.SHAKE), 0.0, 1.0),
        ((M.PAN_LEFT, M.PAN_LEFT), 0.0, 1.0),
        ((M.STATIC_SHOT, M.PAN_LEFT), 0.0, 1.0),
        ((M.PAN_LEFT,), 0.5, 0.5),
        ((M.PAN_LEFT,), -0.1, 1.0),
        ((M.PAN_LEFT,), 0.0, 1.1),
    ],
)
def test_a_segment_refuses_to_be_malformed(moves: tuple[CameraMove, ...], start: float, end: float) -> None:
    with pytest.raises(ValueError, match="segment"):
        Segment(moves, start, end)


def test_a_plan_refuses_gaps_and_short_coverage() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CameraPlan((), PlanSource.DEFAULT)
    with pytest.raises(ValueError, match="cover"):
        CameraPlan((Segment((M.PAN_LEFT,), 0.0, 0.5),), PlanSource.BRACKETS)
    with pytest.raises(ValueError, match="gaps"):
        CameraPlan(
            (Segment((M.PAN_LEFT,), 0.0, 0.4), Segment((M.PAN_RIGHT,), 0.5, 1.0)),
            PlanSource.BRACKETS,
        )


# --- Robustness ----------------------------------------------------------------------------

OPENERS = ["[", "【", "\N{FULLWIDTH LEFT SQUARE BRACKET}"]
CLOSERS = ["]", "】", "\N{FULLWIDTH RIGHT SQUARE BRACKET}"]
SEPARATORS = [",", ", ", "\N{FULLWIDTH COMMA}", "、", ";", " and ", " & "]
WORDS = ["zooms in", "pans to the left", "handheld", "dolly", "static camera", "panorama", "tilts up"]
COMMANDS = [name for name, _ in ENGLISH + CHINESE]

# A command as someone might type it: any case, padded with spaces.
typed_commands = st.builds(
    lambda name, upper, pad: pad + (name.upper() if upper else name) + pad,
    st.sampled_from(COMMANDS),
    st.booleans(),
    st.sampled_from(["", " ", "  "]),
)
# A bracket of a few commands, some not commands at all, mixing bracket styles and separators.
brackets = st.builds(
    lambda opener, items, separator, closer: opener + separator.join(items) + closer,
    st.sampled_from(OPENERS),
    st.lists(st.one_of(typed_commands, st.text(max_size=8)), max_size=5),
    st.sampled_from(SEPARATORS),
    st.sampled_from(CLOSERS),
)
# Loose pieces that can break brackets apart, nest them or leave them open.
fragments = st.sampled_from([*OPENERS, *CLOSERS, *SEPARATORS, *WORDS, *COMMANDS, "\n", "🎥"])

prompts_with_commands = st.lists(st.one_of(brackets, fragments, st.text(max_size=12)), max_size=120).map(
    "".join
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=5000))
def test_any_text_gives_a_valid_plan(prompt: str) -> None:
    plan = plan_camera(prompt)
    assert_valid(plan)
    assert plan_camera(prompt) == plan


@settings(max_examples=200, deadline=None)
@given(prompts_with_commands)
def test_any_mix_of_commands_and_brackets_gives_a_valid_plan(prompt: str) -> None:
    plan = plan_camera(prompt)
    assert_valid(plan)
    assert plan_camera(prompt) == plan


# Long prompts dense in brackets and separators, which plain random text almost never is.
long_bracket_soup = (
    st.lists(
        st.sampled_from([*OPENERS, *CLOSERS, *SEPARATORS, *COMMANDS, "Pan", "left", " ", "x"]),
        min_size=400,
        max_size=1000,
    )
    .map("".join)
    .map(lambda prompt: prompt[:5000])
)


@settings(max_examples=30, deadline=None)
@given(long_bracket_soup)
def test_long_prompts_dense_in_brackets_give_a_valid_plan(prompt: str) -> None:
    plan = plan_camera(prompt)
    assert_valid(plan)
    assert plan_camera(prompt) == plan


@pytest.mark.parametrize(
    "wanted",
    [
        lambda plan: plan.source is PlanSource.BRACKETS and len(plan.segments) > 1,
        lambda plan: any(len(segment.moves) == MAX_SIMULTANEOUS_MOVES for segment in plan.segments),
        lambda plan: plan.source is PlanSource.WORDS,
    ],
    ids=["sequential brackets", "three moves at once", "plain words"],
)
def test_the_mixed_strategy_reaches_every_kind_of_plan(wanted: Callable[[CameraPlan], bool]) -> None:
    # Guards the strategy above against drifting into text that never exercises the parser.
    find(
        prompts_with_commands,
        lambda prompt: wanted(plan_camera(prompt)),
        settings=settings(database=None, phases=[Phase.generate], max_examples=2000),
    )


@pytest.mark.parametrize(
    "prompt",
    [
        "[" * 5000,
        "]" * 5000,
        "[]" * 2500,
        "[Pan left]" * 400,
        "【左摇】" * 1000,
        "[Pan left, " * 450,
        "pans left and zooms in " * 200,
        "变焦" * 2500,
        "[" + "Pan left, " * 499 + "]",
    ],
)
def test_pathological_prompts_finish_fast_and_are_capped(prompt: str) -> None:
    # Milliseconds for a linear reading; a backtracking one would run for minutes.
    plan = finishes_within(5, lambda: plan_camera(prompt), "reading the plan")
    assert_valid(plan)


def test_many_brackets_are_capped_to_the_first_segments() -> None:
    plan = plan_camera("[Pan left] [Pan right] " * 200)
    assert len(plan.segments) == MAX_SEGMENTS
    assert [segment.moves[0] for segment in plan.segments] == [M.PAN_LEFT, M.PAN_RIGHT] * (MAX_SEGMENTS // 2)
    assert plan.segments[-1].end == 1.0
    assert_valid(plan)

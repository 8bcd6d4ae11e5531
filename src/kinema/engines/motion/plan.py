"""The camera plan: which moves the virtual camera makes, and when, as the prompt asks.

Hailuo prompts carry camera commands in square brackets, e.g. ``A harbour at dawn [Push in]``.
`plan_camera` turns a prompt into a `CameraPlan`: segments that split the clip one after another,
each holding the moves made at the same time during it. The renderer decides how far and how
smoothly each move goes; this module only decides what and when.

How a prompt is read:

- Brackets. ``[...]``, ``【...】`` and full-width square brackets hold commands; any opener
  pairs with any closer, since prompts mix keyboards. The text between an opener and the next
  closer is one bracket; an opener seen while a bracket is still open abandons the earlier one, so nested
  or unbalanced brackets still yield the innermost command and every character is looked at
  once (the scan is linear whatever the input).
- Inside a bracket, commands are separated by ``,`` ``;`` ``&`` (ASCII or full-width), the
  ideographic comma ``、`` or the word ``and``. Each must be a whole command (English, any case
  and spacing, or Chinese); other words are ignored, and a bracket with no command in it
  (``[cinematic]``) is no segment.
- The commands of one bracket run at the same time: duplicates count once, Static shot is
  dropped when anything else moves (it adds nothing, so it must not take a place), then the first
  `MAX_SIMULTANEOUS_MOVES` are kept.
- Brackets at different places run one after another and share the clip equally. Only the first
  `MAX_SEGMENTS` count: beyond that a 6-second clip would give each move under 0.75 s, too short
  to read as a move rather than a twitch, and a prompt with hundreds of brackets stays cheap.
- Without any recognised bracket, plain words steer the camera: English phrasings (``zooms in``,
  ``pans to the right``, ``dolly``, ``handheld``, ...; whole words only, so ``panorama`` is no
  pan) and the Chinese commands written without brackets. Everything found runs at the same
  time in one segment covering the whole clip, in order of first appearance and under the same
  rules as one bracket. Prose rarely orders camera moves the way bracketed commands do
  (``zooms in as it pans left`` describes one combined move), so reading it as a sequence would
  invent timing the prompt did not ask for.
- With nothing recognised, or an empty prompt: a gentle push-in.

The plan is a pure function of the prompt.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class CameraMove(StrEnum):
    """One of the 15 Hailuo camera commands."""

    PAN_LEFT = "pan_left"  #: Rotates left about the vertical axis; content moves right.
    PAN_RIGHT = "pan_right"  #: Rotates right about the vertical axis; content moves left.
    TILT_UP = "tilt_up"  #: Rotates up about the horizontal axis; content moves down.
    TILT_DOWN = "tilt_down"  #: Rotates down about the horizontal axis; content moves up.
    ZOOM_IN = "zoom_in"  #: Lengthens the focal length; content grows about the centre.
    ZOOM_OUT = "zoom_out"  #: Shortens the focal length; content shrinks about the centre.
    PUSH_IN = "push_in"  #: Moves forward, toward the subject.
    PULL_OUT = "pull_out"  #: Moves backward, away from the subject.
    TRUCK_LEFT = "truck_left"  #: Moves sideways to the left without turning.
    TRUCK_RIGHT = "truck_right"  #: Moves sideways to the right without turning.
    PEDESTAL_UP = "pedestal_up"  #: Moves straight up without turning.
    PEDESTAL_DOWN = "pedestal_down"  #: Moves straight down without turning.
    SHAKE = "shake"  #: Handheld jitter on top of whatever else moves.
    TRACKING_SHOT = "tracking_shot"  #: Follows a subject: a slow lateral move with a slight push.
    STATIC_SHOT = "static_shot"  #: Locked off: no motion at all.


COMMAND_NAMES: Mapping[CameraMove, str] = MappingProxyType(
    {
        CameraMove.PAN_LEFT: "Pan left",
        CameraMove.PAN_RIGHT: "Pan right",
        CameraMove.TILT_UP: "Tilt up",
        CameraMove.TILT_DOWN: "Tilt down",
        CameraMove.ZOOM_IN: "Zoom in",
        CameraMove.ZOOM_OUT: "Zoom out",
        CameraMove.PUSH_IN: "Push in",
        CameraMove.PULL_OUT: "Pull out",
        CameraMove.TRUCK_LEFT: "Truck left",
        CameraMove.TRUCK_RIGHT: "Truck right",
        CameraMove.PEDESTAL_UP: "Pedestal up",
        CameraMove.PEDESTAL_DOWN: "Pedestal down",
        CameraMove.SHAKE: "Shake",
        CameraMove.TRACKING_SHOT: "Tracking shot",
        CameraMove.STATIC_SHOT: "Static shot",
    }
)
"""Each command as Hailuo prompts write it in English, e.g. ``[Pan left]``."""

CHINESE_COMMAND_NAMES: Mapping[CameraMove, str] = MappingProxyType(
    {
        CameraMove.PAN_LEFT: "左摇",
        CameraMove.PAN_RIGHT: "右摇",
        CameraMove.TILT_UP: "上摇",
        CameraMove.TILT_DOWN: "下摇",
        CameraMove.ZOOM_IN: "变焦推近",
        CameraMove.ZOOM_OUT: "变焦拉远",
        CameraMove.PUSH_IN: "推进",
        CameraMove.PULL_OUT: "拉远",
        CameraMove.TRUCK_LEFT: "左移",
        CameraMove.TRUCK_RIGHT: "右移",
        CameraMove.PEDESTAL_UP: "上升",
        CameraMove.PEDESTAL_DOWN: "下降",
        CameraMove.SHAKE: "晃动",
        CameraMove.TRACKING_SHOT: "跟随",
        CameraMove.STATIC_SHOT: "固定",
    }
)
"""Each command as Hailuo prompts write it in Chinese, e.g. ``【左摇】``."""


class PlanSource(StrEnum):
    """What in the prompt the plan came from."""

    BRACKETS = "brackets"  #: Camera commands in square brackets.
    WORDS = "words"  #: Plain-language camera words, no brackets.
    DEFAULT = "default"  #: Nothing said: a gentle push-in.


MAX_SIMULTANEOUS_MOVES = 3
"""The most moves one segment makes at once, as Hailuo allows in one bracket."""

MAX_SEGMENTS = 8
"""The most segments one after another; later brackets are ignored (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the clip during which the camera makes the same moves, all at once.

    ``start`` and ``end`` are fractions of the clip. A segment without motion holds
    ``(CameraMove.STATIC_SHOT,)``, never an empty tuple, and Static shot never shares a segment.
    """

    moves: tuple[CameraMove, ...]
    start: float
    end: float

    def __post_init__(self) -> None:
        if not 1 <= len(self.moves) <= MAX_SIMULTANEOUS_MOVES:
            raise ValueError(f"a segment makes 1 to {MAX_SIMULTANEOUS_MOVES} moves, not {len(self.moves)}")
        if len(set(self.moves)) != len(self.moves):
            raise ValueError(f"a segment makes each move once: {self.moves}")
        if CameraMove.STATIC_SHOT in self.moves and len(self.moves) > 1:
            raise ValueError("a static shot cannot share a segment with other moves")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"a segment needs 0 <= start < end <= 1, not {self.start}..{self.end}")

    @property
    def duration(self) -> float:
        """The segment's share of the clip."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class CameraPlan:
    """The whole camera path: segments that follow one another and cover the clip exactly."""

    segments: tuple[Segment, ...]
    source: PlanSource

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a camera plan needs at least one segment")
        if self.segments[0].start != 0.0 or self.segments[-1].end != 1.0:
            raise ValueError("a camera plan must cover the clip from 0.0 to 1.0")
        for before, after in zip(self.segments, self.segments[1:], strict=False):
            if after.start != before.end:
                raise ValueError("a camera plan's segments must follow one another without gaps")


def plan_camera(prompt: str) -> CameraPlan:
    """Read the camera plan from a prompt: brackets first, then plain words, then a push-in."""
    bracketed = _bracketed_moves(prompt)
    if bracketed:
        count = len(bracketed)
        # k / count is exact at both ends (0 / n == 0.0, n / n == 1.0), and each start reuses the
        # previous end, so the segments meet without rounding gaps.
        bounds = [k / count for k in range(count + 1)]
        segments = tuple(
            Segment(moves, bounds[index], bounds[index + 1]) for index, moves in enumerate(bracketed)
        )
        return CameraPlan(segments, PlanSource.BRACKETS)
    worded = _simultaneous(_worded_moves(prompt))
    if worded:
        return CameraPlan((Segment(worded, 0.0, 1.0),), PlanSource.WORDS)
    return CameraPlan((Segment((CameraMove.PUSH_IN,), 0.0, 1.0),), PlanSource.DEFAULT)


def _simultaneous(found: Iterable[CameraMove]) -> tuple[CameraMove, ...]:
    """The moves to make at once, from those found in order: once each, static only if alone."""
    unique = list(dict.fromkeys(found))
    if len(unique) > 1 and CameraMove.STATIC_SHOT in unique:
        unique.remove(CameraMove.STATIC_SHOT)
    return tuple(unique[:MAX_SIMULTANEOUS_MOVES])


# --- Bracketed commands ----------------------------------------------------------------------

_OPENERS = frozenset("[\N{LEFT BLACK LENTICULAR BRACKET}\N{FULLWIDTH LEFT SQUARE BRACKET}")
_CLOSERS = frozenset("]\N{RIGHT BLACK LENTICULAR BRACKET}\N{FULLWIDTH RIGHT SQUARE BRACKET}")

# Every separator character becomes a comma, so one split does; the word "and" is handled apart
# because it is only a separator as a whole word.
_SEPARATORS = ",;&\N{FULLWIDTH COMMA}\N{FULLWIDTH SEMICOLON}\N{FULLWIDTH AMPERSAND}\N{IDEOGRAPHIC COMMA}"
_TO_COMMA = str.maketrans(dict.fromkeys(_SEPARATORS, ","))


def _command_key(text: str) -> str:
    """A command as written, reduced to compare equal however it was typed.

    NFKC turns full-width Latin letters into ASCII; hyphens and underscores count as spaces so
    ``push-in`` and ``pan_left`` read as commands; case, runs of whitespace and a final full stop
    or exclamation mark do not matter.
    """
    folded = unicodedata.normalize("NFKC", text).casefold().replace("-", " ").replace("_", " ")
    return " ".join(folded.split()).strip(".!\N{IDEOGRAPHIC FULL STOP}")


_COMMANDS_BY_KEY: Mapping[str, CameraMove] = MappingProxyType(
    {_command_key(name): move for move, name in COMMAND_NAMES.items()}
    | {_command_key(name): move for move, name in CHINESE_COMMAND_NAMES.items()}
)


def _bracket_contents(prompt: str) -> Iterator[str]:
    """The text inside each closed bracket, in order; see the module docstring for nesting."""
    open_at: int | None = None
    for index, char in enumerate(prompt):
        if char in _OPENERS:
            open_at = index + 1
        elif char in _CLOSERS and open_at is not None:
            yield prompt[open_at:index]
            open_at = None


def _commands_in(content: str) -> Iterator[CameraMove]:
    """The recognised commands in one bracket's text, in order; unknown ones are skipped."""
    for piece in content.translate(_TO_COMMA).split(","):
        words: list[str] = []
        for word in [*piece.split(), "and"]:  # the sentinel "and" flushes the last command
            if word.casefold() != "and":
                words.append(word)
                continue
            move = _COMMANDS_BY_KEY.get(_command_key(" ".join(words)))
            if move is not None:
                yield move
            words = []


def unknown_commands(prompt: str) -> list[str]:
    """Each piece of bracketed text that names no camera command, as written, in order.

    The plan skips these (``[Pan lft]`` moves nothing); this says which they were, so that a
    typo can be shown to the person who made it. Brackets are read as `plan_camera` reads them.
    """
    unknown: list[str] = []
    for content in _bracket_contents(prompt):
        for piece in content.translate(_TO_COMMA).split(","):
            words: list[str] = []
            for word in [*piece.split(), "and"]:  # the sentinel "and" flushes the last piece
                if word.casefold() != "and":
                    words.append(word)
                    continue
                text = " ".join(words)
                if text and _command_key(text) not in _COMMANDS_BY_KEY:
                    unknown.append(text)
                words = []
    return unknown


def _bracketed_moves(prompt: str) -> list[tuple[CameraMove, ...]]:
    """The moves of each bracket that holds a command, in order, at most `MAX_SEGMENTS`."""
    sequence: list[tuple[CameraMove, ...]] = []
    for content in _bracket_contents(prompt):
        moves = _simultaneous(_commands_in(content))
        if moves:
            sequence.append(moves)
            if len(sequence) == MAX_SEGMENTS:
                break
    return sequence


# --- Plain words -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Phrase:
    """An English phrasing of a move: a verb, then (unless ``objects`` is empty) one of ``objects``."""

    move: CameraMove
    verbs: frozenset[str]
    objects: frozenset[str] = frozenset()


def _forms(*words: str) -> frozenset[str]:
    return frozenset(words)


_PAN = _forms("pan", "pans", "panning", "panned")
_TILT = _forms("tilt", "tilts", "tilting", "tilted")
_ZOOM = _forms("zoom", "zooms", "zooming", "zoomed")
_PUSH = _forms("push", "pushes", "pushing", "pushed")
_PULL = _forms("pull", "pulls", "pulling", "pulled")
_DOLLY = _forms("dolly", "dollies", "dollying", "dollied")
_TRUCK = _forms("truck", "trucks", "trucking", "trucked")
_MOVE = _forms("move", "moves", "moving", "moved")
_PEDESTAL = _forms("pedestal", "pedestals", "pedestaling", "pedestalling")
_CRANE = _forms("crane", "cranes", "craning", "craned")
_LEFT = _forms("left", "leftward", "leftwards")
_RIGHT = _forms("right", "rightward", "rightwards")
_UP = _forms("up", "upward", "upwards")
_DOWN = _forms("down", "downward", "downwards")
_IN = _forms("in", "into")
_OUT = _forms("out", "back", "backward", "backwards", "away")

_PHRASES = (
    _Phrase(CameraMove.PAN_LEFT, _PAN, _LEFT),
    _Phrase(CameraMove.PAN_RIGHT, _PAN, _RIGHT),
    _Phrase(CameraMove.TILT_UP, _TILT, _UP),
    _Phrase(CameraMove.TILT_DOWN, _TILT, _DOWN),
    _Phrase(CameraMove.ZOOM_IN, _ZOOM, _IN),
    _Phrase(CameraMove.ZOOM_OUT, _ZOOM, _forms("out")),
    _Phrase(CameraMove.PUSH_IN, _PUSH, _IN),
    _Phrase(CameraMove.PUSH_IN, _DOLLY, _IN),
    _Phrase(CameraMove.PUSH_IN, _MOVE, _forms("closer")),
    _Phrase(CameraMove.PULL_OUT, _PULL, _OUT),
    _Phrase(CameraMove.PULL_OUT, _DOLLY, _OUT),
    _Phrase(CameraMove.PUSH_IN, _DOLLY),  # a bare "dolly" means the usual dolly-in
    _Phrase(CameraMove.TRUCK_LEFT, _TRUCK | _MOVE, _LEFT),
    _Phrase(CameraMove.TRUCK_RIGHT, _TRUCK | _MOVE, _RIGHT),
    _Phrase(CameraMove.PEDESTAL_UP, _PEDESTAL | _CRANE, _UP),
    _Phrase(CameraMove.PEDESTAL_DOWN, _PEDESTAL | _CRANE, _DOWN),
    _Phrase(CameraMove.PEDESTAL_UP, _forms("rise", "rises", "rising")),
    _Phrase(CameraMove.PEDESTAL_DOWN, _forms("descend", "descends", "descending")),
    _Phrase(CameraMove.SHAKE, _forms("handheld", "shaky", "shake", "shakes", "shaking")),
    _Phrase(CameraMove.SHAKE, _forms("hand"), _forms("held")),  # "hand-held" splits in two
    _Phrase(CameraMove.TRACKING_SHOT, _forms("tracking", "tracks", "follows", "following")),
    _Phrase(
        CameraMove.STATIC_SHOT, _forms("static", "fixed", "still", "stationary"), _forms("shot", "camera")
    ),
    _Phrase(CameraMove.STATIC_SHOT, _forms("locked"), _forms("off")),  # "locked-off" splits in two
)

# Words that may stand between a verb and its object, as in "pans slowly to the left".
_FILLERS = _forms("to", "the", "toward", "towards", "a", "bit", "little", "further") | _forms(
    "slowly", "gently", "smoothly", "slightly", "steadily", "quickly", "softly"
)
_MAX_FILLERS = 4


def _phrases_by_verb() -> Mapping[str, tuple[_Phrase, ...]]:
    """Each verb's phrases, those needing an object first so a bare verb is the last resort."""
    table: dict[str, list[_Phrase]] = {}
    for phrase in sorted(_PHRASES, key=lambda phrase: not phrase.objects):
        for verb in phrase.verbs:
            table.setdefault(verb, []).append(phrase)
    return MappingProxyType({verb: tuple(phrases) for verb, phrases in table.items()})


_PHRASES_BY_VERB = _phrases_by_verb()

# English words are runs of ASCII letters: anything else, hyphens included, separates them. A
# single character class repeated cannot backtrack, so this is linear in the prompt's length.
_ENGLISH_WORD = re.compile(r"[A-Za-z]+")

_CHINESE_BY_FIRST_CHAR: Mapping[str, tuple[tuple[str, CameraMove], ...]] = MappingProxyType(
    {
        first: tuple(
            # Longest first, so 变焦拉远 (zoom out) is not read as its tail 拉远 (pull out).
            sorted(
                ((name, move) for move, name in CHINESE_COMMAND_NAMES.items() if name[0] == first),
                key=lambda pair: -len(pair[0]),
            )
        )
        for first in {name[0] for name in CHINESE_COMMAND_NAMES.values()}
    }
)


def _english_moves(prompt: str) -> Iterator[tuple[int, CameraMove]]:
    """Each English camera phrase in the prompt, with where it starts."""
    found = list(_ENGLISH_WORD.finditer(prompt))
    words = [match.group().lower() for match in found]
    index = 0
    while index < len(words):
        matched = _match_phrase(words, index)
        if matched is None:
            index += 1
            continue
        move, after = matched
        yield found[index].start(), move
        index = after


def _match_phrase(words: Sequence[str], index: int) -> tuple[CameraMove, int] | None:
    """The move whose phrase starts at ``words[index]``, and the index just past the phrase."""
    phrases = _PHRASES_BY_VERB.get(words[index])
    if phrases is None:
        return None
    object_at = index + 1
    while object_at < len(words) and object_at - index <= _MAX_FILLERS and words[object_at] in _FILLERS:
        object_at += 1
    for phrase in phrases:
        if not phrase.objects:
            return phrase.move, index + 1
        if object_at < len(words) and words[object_at] in phrase.objects:
            return phrase.move, object_at + 1
    return None


def _chinese_moves(prompt: str) -> Iterator[tuple[int, CameraMove]]:
    """Each Chinese command written in the prompt, with where it starts."""
    index = 0
    while index < len(prompt):
        for name, move in _CHINESE_BY_FIRST_CHAR.get(prompt[index], ()):
            if prompt.startswith(name, index):
                yield index, move
                index += len(name)
                break
        else:
            index += 1


def _worded_moves(prompt: str) -> list[CameraMove]:
    """Every move the prompt's plain words ask for, English and Chinese, in order of appearance."""
    found = sorted([*_english_moves(prompt), *_chinese_moves(prompt)], key=lambda pair: pair[0])
    return [move for _, move in found]

"""Fuzz the prompt parser: any text gives a camera plan that a path can be made from, never an error.

The plan checks its own shape when it is built (segments that cover the clip, one to three moves
each); on top of that it must hold at most `MAX_SEGMENTS` segments and give a finite camera path.
Seeds: the camera commands in English and Chinese from the parser's tests, alone and in brackets.
"""

from __future__ import annotations

import numpy as np

from fuzz.harness import instrumented, run

with instrumented():
    from kinema.domain.video import FrameSize
    from kinema.engines.motion.camera import plan_path
    from kinema.engines.motion.plan import MAX_SEGMENTS, plan_camera

SIZE = FrameSize(64, 36)


def fuzz_one(data: bytes) -> None:
    # Lone surrogates included: a JSON body can carry them ("\ud800"), and so can a prompt.
    prompt = data.decode("utf-8", "surrogateescape")
    plan = plan_camera(prompt)
    if len(plan.segments) > MAX_SEGMENTS:
        raise AssertionError(f"{len(plan.segments)} segments, more than {MAX_SEGMENTS}")
    path = plan_path(plan, SIZE, frames=6, fps=24, seed=len(data))
    if not np.isfinite(path.homographies).all():
        raise AssertionError("the camera path is not finite")


def seeds() -> list[bytes]:
    from tests.unit.test_plan import CHINESE, CLOSERS, ENGLISH, OPENERS, SEPARATORS, WORDS

    commands = [name for name, _ in ENGLISH + CHINESE]
    prompts = ["", "a cat on a sofa", "[]", "[cinematic, 4k]", *commands, *WORDS]
    pairs = zip(OPENERS, CLOSERS, strict=True)
    prompts += [f"{opener}{command}{closer}" for opener, closer in pairs for command in commands]
    prompts += [
        f"A lake at dusk [{separator.join(commands[index : index + 3])}] then [{commands[-index - 1]}]"
        for index, separator in enumerate(SEPARATORS)
    ]
    prompts.append("the camera " + " and then ".join(WORDS))
    return [prompt.encode() for prompt in prompts]


if __name__ == "__main__":
    run("prompt_plan", fuzz_one, seeds())

"""Which effects a prompt names, in English and in Chinese."""

from __future__ import annotations

import pytest

from kinema.engines.motion.effects import CHINESE_EFFECT_WORDS, EFFECT_WORDS, Effect, effects_in


def test_the_seed_example_names_sparks_and_dust() -> None:
    prompt = "Two knights clash in a ruined castle courtyard, sparks explode as swords meet, dust in the air"
    assert effects_in(prompt) == {Effect.SPARKS, Effect.DUST}


@pytest.mark.parametrize("effect", list(Effect))
def test_every_word_of_every_effect_is_read(effect: Effect) -> None:
    for word in EFFECT_WORDS[effect]:
        assert effects_in(f"a scene, {word.upper()} everywhere") == {effect}, word
    for term in CHINESE_EFFECT_WORDS[effect]:
        assert effect in effects_in(f"一个场景 {term}。"), term


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("fireflies over a meadow", {Effect.FIREFLIES}),  # not fire
        ("a fireworks show", set()),  # not a word of any effect
        ("[Push in] a portrait in the studio", set()),
        ("雪山下的湖泊", set()),  # a snowy mountain is not snowfall
        ("【推进】篝火旁 下雪了", {Effect.FIRE, Effect.SNOW}),
        ("Neon signs in the RAIN", {Effect.NEON, Effect.RAIN}),
    ],
)
def test_only_named_effects(prompt: str, expected: set[Effect]) -> None:
    assert effects_in(prompt) == expected

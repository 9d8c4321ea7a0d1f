"""Whisper's text normalisation and WER: formatting differences are not recognition errors."""

from __future__ import annotations

import pytest

from speechint_desktop.core.text import normalize, wer
from tests.conftest import JFK_TEXT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The colour of my favourite neighbour.", "the color of my favorite neighbor"),  # spelling map
        ("I have twenty one apples and 3 pears.", "i have 21 apples and 3 pears"),  # numbers
        ("Hello, world!  (laughs) [music] Mr. Smith", "hello world mister smith"),  # punct, brackets
        ("It's $20.50, isn't it?", "it is $20.50 is not it"),
        ("Um, uh, hmm.", ""),  # fillers
        ("  And   so,\tmy fellow  ", "and so my fellow"),
    ],
)
def test_english_normaliser(text, expected):
    assert normalize(text) == expected
    assert normalize(text, "English") == expected


def test_other_languages_use_the_basic_normaliser():
    assert normalize("¡Hola, Señor! ¿Qué tal?", "es") == "hola señor qué tal"
    assert normalize("colour", "fr") == "colour"  # no English spelling map outside English
    assert normalize("你好，世界", "zh") == "你 好 世 界"  # no spaces between words: per character


def test_wer():
    assert wer([JFK_TEXT], [JFK_TEXT.upper().replace(",", "")]) == 0.0
    assert wer("the colour red", "the color red") == 0.0
    assert wer(["a b c d"], ["a b x d"]) == pytest.approx(0.25)
    # corpus WER: total edits over total reference words (1 + 2 errors / 4 + 2 words)
    assert wer(["a b c d", "e f"], ["a b x d", "g h"]) == pytest.approx(3 / 6)


def test_wer_skips_empty_references():
    # "um" normalises to nothing: no reference words, so no defined error rate for that pair
    assert wer(["um", "a b"], ["anything at all", "a b"]) == 0.0
    assert wer([""], ["x"]) == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])

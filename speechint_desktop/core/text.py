"""Text normalisation and word error rate, the way Whisper is evaluated.

A transcript's casing, punctuation, spelling ("colour"/"color") and number style ("twenty one"
/"21") are not recognition errors; Whisper's normalisers remove them before WER so numbers are
comparable with published results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from .catalog import resources_dir

# Scripts written without spaces between words: WER there is computed per character.
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "yue", "bo"})
_ENGLISH = frozenset({"en", "english", "en-us", "en-gb", "en_us", "en_gb"})


def _lang(language: str | None) -> str:
    return (language or "en").strip().lower()


@lru_cache(maxsize=1)
def _english():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    path = resources_dir() / "normalizer" / "english.json"
    return EnglishTextNormalizer(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=2)
def _basic(split_letters: bool):
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer(remove_diacritics=False, split_letters=split_letters)


def normalize(text: str, language: str | None = "en") -> str:
    """Whisper's English normaliser for English (spelling map from ``resources/normalizer``),
    the basic one (case, punctuation, brackets) otherwise; whitespace collapsed either way."""
    lang = _lang(language)
    if lang in _ENGLISH:
        out = _english()(text)
    else:
        out = _basic(lang in _NO_SPACE_LANGUAGES)(text)
    return " ".join(out.split())


def wer(
    references: Iterable[str] | str, hypotheses: Iterable[str] | str, language: str | None = "en"
) -> float:
    """Corpus word error rate (total edits / total reference words) after ``normalize``.

    Pairs whose normalised reference is empty are skipped: WER divides by the reference's word
    count, so an empty reference (silence, or a line of only "um"/punctuation, which the English
    normaliser drops) has no defined rate, and jiwer refuses it. Returns 0.0 if nothing is left.
    """
    import jiwer

    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(normalize(r, language), normalize(h, language)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))

"""What decoding produces, without torch: raw segments and words in the decoded input's time,
and the hallucination check on them. Kept apart from ``decode`` so that preparing recordings
(``recording``) imports no torch and can run while the model is still loading."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Capture:
    """One encoder pass of batch row ``row`` starting at its encoder frame ``offset``: the
    states (1500, d_model) and, when the model has a head, its per-frame inputs (1500, F) —
    numpy from CTranslate2, torch tensors from the transformers decoder."""

    row: int
    offset: int
    hidden: object
    frames: object = None


@dataclass
class RawWord:
    start: float  # seconds, in the decoded input's own time
    end: float
    text: str
    probability: float | None


@dataclass
class RawSegment:
    start: float
    end: float
    tokens: list[int]  # text tokens only
    words: list[RawWord] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    row: int = 0  # which input of the batch


def place_words(segments: list[RawSegment], jump_s, token_probs: list[float], split) -> None:
    """Words of a window's segments, in place, from where the alignment path first reaches each
    text token (``jump_s``, seconds; one more for the end of text) and each token's probability;
    ``split(tokens) -> (words, token indices)``. Words stay inside their segment's timestamps:
    the alignment can stray past a pause into the neighbouring segment (or, in a packed window,
    into another stretch of speech). Both decoders (``decode``, ``ct2``) use this one rule."""
    k = 0
    last_jump = len(jump_s) - 1
    for seg in segments:
        words, indices = split(seg.tokens)
        seg.words = []
        for word, idx in zip(words, indices, strict=True):
            first, last = k + idx[0], k + idx[-1]
            start = min(max(float(jump_s[min(first, last_jump)]), seg.start), seg.end)
            end = min(max(float(jump_s[min(last + 1, last_jump)]), start), seg.end)
            p = [token_probs[k + i] for i in idx if k + i < len(token_probs)]
            seg.words.append(RawWord(start, max(start, end), word, sum(p) / len(p) if p else None))
        k += len(seg.tokens)


_PUNCTUATION = "\"'“¿([{-\"'.。,，!！?？:：”)]}、"


def _word_anomaly(w: RawWord) -> float:
    """openai-whisper's word anomaly score: improbable, too short or too long words."""
    score = 1.0 if (w.probability or 0.0) < 0.15 else 0.0
    duration = w.end - w.start
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def is_hallucination(seg: RawSegment, no_speech_threshold: float | None) -> bool:
    """Text Whisper wrote over noise: the model itself says there was no speech (no-speech
    probability above the threshold) and the words look as openai-whisper's hallucination
    check describes (its ``word_anomaly_score`` over the first eight words). The classic case
    is "Thank you." over a fan or a door; real speech rarely meets both."""
    if no_speech_threshold is None or seg.no_speech_prob is None or seg.no_speech_prob <= no_speech_threshold:
        return False
    words = [w for w in seg.words if w.text.strip() not in _PUNCTUATION][:8]
    if not words:
        return False
    score = sum(_word_anomaly(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)

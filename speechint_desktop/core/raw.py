"""What decoding produces, without torch: raw segments and words in the decoded input's time,
and the hallucination check on them. Kept apart from ``decode`` so that preparing recordings
(``recording``) imports no torch and can run while the model is still loading."""

from __future__ import annotations

from dataclasses import dataclass, field


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

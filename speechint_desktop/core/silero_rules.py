"""Silero VAD's rules that turn per-frame speech probabilities into speech regions.

A port of ``silero_vad.get_speech_timestamps_from_probs`` (silero-vad 6.2, 16 kHz, sample
units, its default longest-pause cut at the maximum length). The library's function is pure
Python, but its module imports torch, which alone costs ~1.1 s of start-up in a run that
otherwise never needs it. tests/core/test_silero_rules.py holds this port equal to the
library on real and generated probabilities.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512  # samples per probability at 16 kHz


def speech_timestamps(
    probs,
    threshold: float = 0.5,
    min_speech_duration_ms: float = 250,
    max_speech_duration_s: float = float("inf"),
    min_silence_duration_ms: float = 100,
    speech_pad_ms: float = 30,
    neg_threshold: float | None = None,
    min_silence_at_max_speech: float = 98,
    audio_length_samples: int | None = None,
) -> list[tuple[int, int]]:
    """Speech ``[(start, end)]`` in samples from one probability per 512-sample frame.

    Same parameters and defaults as silero's function. Speech starts at a frame at or above
    ``threshold`` and ends once frames stay below ``neg_threshold`` (default
    ``threshold - 0.15``, at least 0.01) for ``min_silence_duration_ms``; regions not longer
    than ``min_speech_duration_ms`` are dropped. A region growing past
    ``max_speech_duration_s`` is cut at the longest pause inside it (one longer than
    ``min_silence_at_max_speech`` ms), or where it stands if it has none. Regions are then
    widened by ``speech_pad_ms`` (by half the pause where two are closer than twice that).
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)  # compared as Python floats, as silero does
    if audio_length_samples is None:
        audio_length_samples = p.size * FRAME
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * min_speech_duration_ms / 1000
    pad = SAMPLE_RATE * speech_pad_ms / 1000
    max_speech = SAMPLE_RATE * max_speech_duration_s - FRAME - 2 * pad
    min_silence = SAMPLE_RATE * min_silence_duration_ms / 1000
    min_pause_to_cut = SAMPLE_RATE * min_silence_at_max_speech / 1000

    speeches: list[list[int]] = []
    speaking = False
    start = 0
    silent_since = 0  # first sample of the current run of silence; 0: none
    pauses: list[tuple[int, int]] = []  # (start, length) of pauses inside the current region
    loud = (p >= threshold).tolist()
    quiet = (p < neg_threshold).tolist()
    for i in range(p.size):
        t = FRAME * i
        if loud[i] and silent_since:
            if t - silent_since > min_pause_to_cut:
                pauses.append((silent_since, t - silent_since))
            silent_since = 0
        if loud[i] and not speaking:
            speaking, start = True, t
            continue
        if speaking and t - start > max_speech:
            silent_since = 0
            if pauses:
                cut, length = max(pauses, key=lambda pause: pause[1])  # the first of equals
                speeches.append([start, cut])
                pauses = []
                # the next region starts where that pause ended (silero's test for "not yet",
                # cut + length < cut + t, always holds: a pause is shorter than all before it)
                start = cut + length
            else:
                speeches.append([start, t])
                speaking, pauses = False, []
                continue
        if quiet[i] and speaking:
            if not silent_since:
                silent_since = t
            if t - silent_since < min_silence:
                continue
            if silent_since - start > min_speech:
                speeches.append([start, silent_since])
            speaking, silent_since, pauses = False, 0, []
    if speaking and audio_length_samples - start > min_speech:
        speeches.append([start, audio_length_samples])
    return _pad(speeches, pad, audio_length_samples)


def _pad(speeches: list[list[int]], pad: float, n_samples: int) -> list[tuple[int, int]]:
    """Silero's final step: each region widened by ``pad`` within the recording; two regions
    closer than ``2 * pad`` share the pause between them half and half."""
    for i, speech in enumerate(speeches):
        if i == 0:
            speech[0] = int(max(0, speech[0] - pad))
        if i == len(speeches) - 1:
            speech[1] = int(min(n_samples, speech[1] + pad))
            continue
        following = speeches[i + 1]
        pause = following[0] - speech[1]
        if pause < 2 * pad:
            speech[1] += int(pause // 2)
            following[0] = int(max(0, following[0] - pause // 2))
        else:
            speech[1] = int(min(n_samples, speech[1] + pad))
            following[0] = int(max(0, following[0] - pad))
    return [(s, e) for s, e in speeches]

"""Long recordings through the real tiny.en with speech detection: no text from silence or noise,
times on the recording's own clock, word timings against known boundaries, speech-only
loudness, and the same text however many windows are decoded together."""

from __future__ import annotations

import difflib
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop.core import audio, loudness
from speechint_desktop.core.engine import NO_SPEECH_NOTE, Engine
from speechint_desktop.core.text import normalize, wer
from tests.conftest import LDC_TEXT, SHARED_AUDIO

SR = 16000


@pytest.fixture(scope="module")
def engine(tiny_en_dir) -> Engine:
    return Engine(str(tiny_en_dir), device="cpu", threads=1, head=False)


@pytest.fixture(scope="module")
def ldc16(ldc_path) -> np.ndarray:
    return audio.to_model_input(audio.load_audio(ldc_path))


def _noise(seconds: float, rms_dbfs: float, seed: int = 0) -> np.ndarray:
    """Real background noise (../shared/audio/extra/noise), tiled and set to ``rms_dbfs``."""
    rng = np.random.default_rng(seed)
    files = sorted((SHARED_AUDIO / "extra" / "noise").glob("*.wav"))
    parts, n = [], int(seconds * SR)
    while sum(len(p) for p in parts) < n:
        x = audio.to_model_input(audio.load_audio(files[int(rng.integers(len(files)))]))
        parts.append(x * 10 ** (rng.uniform(-6, 6) / 20))
    y = np.concatenate(parts)[:n].astype(np.float32)
    return (y * 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2))).astype(np.float32)


@pytest.mark.parametrize(
    "kind,seconds",
    [("silence", 5), ("noise", 5), ("silence", 60), ("noise", 60), ("hum", 30), ("noise", 600)],
)
def test_silence_and_noise_give_no_text(engine, kind, seconds):
    rng = np.random.default_rng(1)
    n = seconds * SR
    if kind == "silence":
        x = (rng.standard_normal(n) * 1e-4).astype(np.float32)  # a quiet room's floor
    elif kind == "hum":
        t = np.arange(n) / SR
        x = (0.05 * np.sin(2 * np.pi * 50 * t) + 0.02 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    else:
        x = _noise(seconds, -25.0)
    a = engine.analyze(x)
    assert a.text == "" and a.segments == [], a.text
    assert a.speech == [] and a.vad
    assert a.loudness.speech_integrated_lufs is None


def test_speech_between_long_pauses_and_noise_keeps_every_word_on_the_recording_clock(engine, ldc16):
    """Three utterances separated by 9-14 s of noise and near-silence: all words, no extras,
    each segment where its utterance really is."""
    pieces, starts = [], []
    for i, gap in enumerate(
        [_noise(9.0, -45.0, 1), (np.zeros(14 * SR)).astype(np.float32), _noise(11.0, -40.0, 2)]
    ):
        pieces.append(gap)
        starts.append(sum(len(p) for p in pieces) / SR)
        pieces.append(ldc16 * 10 ** ((-6 + 6 * i) / 20))  # -6, 0, +6 dB
    pieces.append(_noise(4.0, -45.0, 3))
    x = np.concatenate(pieces)
    a = engine.analyze(x)
    assert a.text.lower().count("greasy wash") == 3, a.text  # no utterance lost, none repeated
    assert wer(" ".join([LDC_TEXT] * 3), a.text) <= 0.4, a.text  # tiny.en on TIMIT in noise
    assert len(a.speech) == 3
    dur = len(ldc16) / SR
    for t0 in starts:
        near = [s for s in a.segments if t0 - 0.5 <= s.start <= t0 + dur]
        assert near, (t0, [(s.start, s.text) for s in a.segments])
        assert abs(near[0].start - t0) <= 0.4
    for s in a.segments:
        assert any(r0 - 0.3 <= s.start and s.end <= r1 + 0.3 for r0, r1 in a.speech), s


def test_batched_windows_give_the_same_text(tiny_en_dir, ldc16, jfk_path):
    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    gap = np.zeros(2 * SR, np.float32)
    x = np.concatenate([jfk, gap, ldc16, gap, jfk, gap, ldc16, gap, jfk, gap, ldc16, gap, jfk, gap, ldc16])
    one = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=1).analyze(x)
    four = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=4).analyze(x)
    assert one.text == four.text
    assert [(s.start, s.end) for s in one.segments] == [(s.start, s.end) for s in four.segments]


# --- word timings against known boundaries -----------------------------------------------------

SENTENCES = [
    ("a yellow kite flew high above the quiet field", "en-us"),
    ("remember to water the plants on friday morning", "en-gb"),
    ("the little boat drifted slowly toward the harbour", "en-us+f3"),
    ("our teacher read a story about a brave lion", "en-gb-scotland"),
    ("turn left at the bakery and walk two blocks", "en-us+m3"),
    ("fresh bread smells wonderful early in the day", "en-gb+f2"),
]


def _spoken_word(word: str, voice: str, folder) -> np.ndarray:
    """One word from espeak-ng at 16 kHz, trimmed to where its sound starts and stops."""
    path = folder / "word.wav"
    subprocess.run([shutil.which("espeak-ng"), "-v", voice, "-s", "165", "-w", str(path), word], check=True)
    x, sr = sf.read(path, dtype="float32")
    x = audio.resample(x, sr, SR)
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1]


def test_word_start_times_match_known_boundaries(engine, tmp_path):
    """Sentences built from single espeak-ng words with known pauses (0.1-0.7 s) between them."""
    rng = np.random.default_rng(7)
    errors, found, total = [], 0, 0
    for text, voice in SENTENCES:
        parts, truth, t = [np.zeros(int(0.7 * SR), np.float32)], [], 0.7
        for word in text.split():
            w = _spoken_word(word, voice, tmp_path)
            truth.append((word, t))
            parts.append(w)
            gap = int(rng.uniform(0.1, 0.7) * SR)
            parts.append(np.zeros(gap, np.float32))
            t += (len(w) + gap) / SR
        parts.append(np.zeros(SR, np.float32))
        a = engine.analyze(np.concatenate(parts))
        words = [w for s in a.segments for w in s.words]
        assert words and all(w.end >= w.start for w in words)
        assert all(0.0 <= (w.probability or 0.0) <= 1.0 for w in words)
        hyp = [normalize(w.text) for w in words]
        matcher = difflib.SequenceMatcher(a=[w for w, _ in truth], b=hyp, autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                errors.append(abs(words[block.b + k].start - truth[block.a + k][1]))
        found += sum(b.size for b in matcher.get_matching_blocks())
        total += len(truth)
    errors = np.array(errors)
    assert found >= 0.8 * total  # the words were recognised, so their times can be compared
    assert np.median(errors) <= 0.08, np.round(np.sort(errors), 3)
    assert np.percentile(errors, 90) <= 0.2, np.round(np.sort(errors), 3)


def test_words_carry_their_measured_level(engine, jfk_path):
    a = engine.analyze(jfk_path)
    words = [w for s in a.segments for w in s.words]
    assert len(words) >= 20
    assert "".join(w.text for w in a.segments[0].words).strip() == a.segments[0].text
    for w in words:
        assert w.rms_dbfs is not None and -70 < w.rms_dbfs < 0
    clip = audio.load_audio(jfk_path)
    w = words[len(words) // 2]
    rms, _ = loudness.span_loudness(clip, w.start, w.end)
    assert w.rms_dbfs == pytest.approx(rms, abs=0.01)
    assert any(w.max_momentary_lufs is not None for w in words)


def test_speech_only_loudness_ignores_loud_noise_between_utterances(engine, ldc16, tmp_path):
    """Clean speech at a known level with noise bursts about 10 dB louder in the pauses: the
    speech-only loudness reads the speech, the programme loudness counts the noise too."""
    from tests.conftest import espeak

    said = [
        espeak("The museum opens at nine and closes late on Thursdays.", tmp_path / "a.wav", "en-gb"),
        espeak("Please leave your umbrella by the door when you come in.", tmp_path / "b.wav", "en-us+f3"),
    ]
    utterances = [ldc16, *(audio.to_model_input(audio.load_audio(p)) for p in said), ldc16]
    speech = np.concatenate(utterances)
    gain = 10 ** ((-26.0 - loudness.integrated_loudness(speech, SR)) / 20)
    parts = []
    for i, utt in enumerate(utterances):
        burst = _noise(2.0, -16.0, 10 + i) * np.hanning(2 * SR)  # a passing car, a fan turned on and off
        parts += [np.zeros(int(1.5 * SR)), burst, np.zeros(int(1.5 * SR)), utt * gain]
    parts.append(np.zeros(2 * SR))
    x = np.concatenate(parts).astype(np.float32)
    a = engine.analyze(x)
    assert len(a.speech) >= 4
    expected = loudness.integrated_loudness(speech * gain, SR)
    assert expected == pytest.approx(-26.0, abs=0.01)
    assert a.loudness.speech_integrated_lufs == pytest.approx(expected, abs=0.5)
    assert a.loudness.integrated_lufs > expected + 2.0  # the programme counts the noise
    assert a.loudness.speech_rms_dbfs is not None and a.loudness.speech_duration_s > 8.0
    assert a.text.lower().count("greasy wash") == 2 and "umbrella" in a.text.lower()


def test_shipped_head_pools_speech_only(tiny_en_dir, ldc16):
    shipped = Engine(str(tiny_en_dir), device="cpu", threads=1)
    noise_only = shipped.analyze(_noise(20.0, -40.0, 5))
    assert noise_only.predicted_intensity is None and noise_only.intensity_note == NO_SPEECH_NOTE
    gap = np.zeros(10 * SR, np.float32)
    spaced = shipped.analyze(np.concatenate([gap, ldc16, gap, ldc16, gap]))
    alone = shipped.analyze(np.concatenate([ldc16, ldc16]))
    # ten-second silences do not drag the voice's predicted level down
    assert spaced.predicted_intensity == pytest.approx(alone.predicted_intensity, abs=1.0)
    assert spaced.loudness.rms_dbfs < alone.loudness.rms_dbfs - 5
